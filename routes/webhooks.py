"""Sending webhook deliveries: signing, one HTTP attempt, and the sweep that re-sends due ones.

Each attempt is a short Celery task on the shared queue, never work in a route's pipeline thread.
The worker's thread pool is sized for pipelines (``VAJRACAST_MAX_ROUTES``) plus a few spare threads
for control tasks, and placement never gives a node more routes than that, so pipelines always find
a thread. What could still go wrong is webhooks taking the spare threads, each stuck for a timeout
on a dead receiver, while reconcile waits. So at most ``SENDERS_PER_WORKER`` attempts run at once in
a worker; a task that finds them all busy leaves its delivery due, and the next sweep sends it again.
A separate queue would not help here: one worker process has one pool whatever queues it consumes.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from routes.models.webhook import DeliveryState, WebhookDelivery, send_soon
from vajracast import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"VajraCast-Webhook/{__version__}"
SENDERS_PER_WORKER = 2
SWEEP_BATCH = 500

_senders = threading.BoundedSemaphore(SENDERS_PER_WORKER)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the receiver's HTTP status; None when no answer came
    error: str = ""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of "<timestamp>.<body>": the timestamp is signed so a captured request
    cannot be replayed later with a fresh one."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_request(delivery: WebhookDelivery, timestamp: int) -> tuple[bytes, dict[str, str]]:
    body = encode_body(delivery.body())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-VajraCast-Event": str(delivery.payload.get("kind", "")),
        "X-VajraCast-Delivery": str(delivery.pk),
        "X-VajraCast-Timestamp": str(timestamp),
        "X-VajraCast-Signature": signature(delivery.webhook.secret, timestamp, body),
    }
    return body, headers


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
    """One POST; any answer or failure becomes an Outcome, never an exception.

    http.client rather than urllib: it sends the headers as spelled (urllib would turn
    X-VajraCast-Event into X-vajracast-event), and it does not follow redirects, which would send
    the signed event to an address nobody configured.
    """
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        status, reason = response.status, response.reason
    except TimeoutError:
        return Outcome(None, f"no answer within {timeout_s:g} s")
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, unresolvable, a malformed answer
        return Outcome(None, str(exc) or type(exc).__name__)
    finally:
        connection.close()
    return Outcome(status, "" if 200 <= status < 300 else f"HTTP {status} {reason}".strip())


def send(delivery: WebhookDelivery, timestamp: int | None = None) -> Outcome:
    body, headers = signed_request(delivery, int(time.time()) if timestamp is None else timestamp)
    return post(delivery.webhook.url, body, headers, settings.VAJRACAST_WEBHOOK_TIMEOUT_S)


def attempt(pk: int) -> str:
    """Make delivery ``pk``'s due attempt if this worker has a free sender and wins the claim.

    Returns what happened, for the task's log line.
    """
    if not _senders.acquire(blocking=False):
        return "busy; left for the sweep"
    try:
        delivery = WebhookDelivery.claim(pk)
        if delivery is None:
            return "not due"
        if not delivery.webhook.enabled:
            delivery.give_up("not sent: the webhook was disabled")
            return delivery.state
        outcome = send(delivery)
        delivery.record(outcome.status, outcome.error)
        if delivery.state != DeliveryState.DELIVERED:
            log.warning(
                'webhook "%s" delivery %s attempt %s: %s',
                delivery.webhook.name,
                pk,
                delivery.attempts,
                outcome.error or outcome.status,
            )
        return delivery.state
    finally:
        _senders.release()


def sweep() -> int:
    """Send every due delivery again (retries, and those whose message was lost); returns how many."""
    due = list(WebhookDelivery.objects.due().order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])
    # A message still queued when the next sweep runs is dropped unread: the next one replaces it.
    send_soon(due, expires_s=settings.VAJRACAST_WEBHOOK_SWEEP_S)
    return len(due)
