"""Webhooks: an HTTP POST to a receiver for each route event it subscribes to.

The delivery row is the truth about an attempt, not the broker or Celery's retry state: a message
only says "look at delivery N", and whoever claims the row (a conditional UPDATE) makes the attempt.
A lost message, a crashed worker or a restarted broker only delays a delivery until the next sweep.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from routes.choices import EventKind
from routes.models.event import RouteEvent
from routes.validators import no_control_characters

log = logging.getLogger(__name__)

# What a webhook that names no kinds receives: what an on-call engineer wants to hear about.
DEFAULT_EVENT_KINDS = (
    EventKind.INPUT_DOWN,
    EventKind.INPUT_UP,
    EventKind.SWITCHED,
    EventKind.OUTPUT_ERROR,
    EventKind.ERROR,
    EventKind.TRANSCODER_BEHIND,
)
# How long a claimed attempt may take before the row is due again (its worker died mid-attempt):
# past the longest request (a connect and a read, each up to VAJRACAST_WEBHOOK_TIMEOUT_S, at most
# 30 s), so a slow but alive attempt is never made twice.
CLAIM_S = 60
LAST_ERROR_MAX = 500


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_webhook_url(value: str) -> None:
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in ("http", "https"):
        raise ValidationError(
            "A webhook URL must start with http:// or https://, e.g. https://alerts.example.net/vajracast.",
            code="scheme",
        )
    URLValidator(schemes=["http", "https"], message="This is not a valid http(s) URL.")(value)


def validate_event_kinds(value: Any) -> None:
    known = EventKind.values
    if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
        raise ValidationError('Give the event kinds as a list of names, e.g. ["switched", "input_down"].')
    unknown = [kind for kind in value if kind not in known]
    if unknown:
        raise ValidationError(
            "Unknown event kind(s) %(unknown)s; use some of: %(known)s.",
            code="unknown_kind",
            params={"unknown": ", ".join(unknown), "known": ", ".join(known)},
        )


class Webhook(models.Model):
    """A receiver of route events: every route's (global) or one route's."""

    name = models.CharField(max_length=100, validators=[no_control_characters])
    url = models.CharField(
        "URL",
        max_length=500,
        validators=[validate_webhook_url],
        help_text="Where events are POSTed, as JSON; http:// or https://.",
    )
    secret = models.CharField(
        max_length=128,
        blank=True,
        validators=[no_control_characters],
        help_text="Signs each request (X-VajraCast-Signature). Left blank: one is generated.",
    )
    event_kinds = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_event_kinds],
        help_text="Event kinds to send; empty: " + ", ".join(DEFAULT_EVENT_KINDS) + ".",
    )
    route = models.ForeignKey(
        "routes.Route",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhooks",
        help_text="Only this route's events; empty: every route's.",
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.secret:
            self.secret = new_secret()
        super().save(*args, **kwargs)

    def wants(self, kind: str) -> bool:
        return kind in (self.event_kinds or DEFAULT_EVENT_KINDS)

    @classmethod
    def for_event(cls, event: RouteEvent) -> list[Webhook]:
        # Kinds are filtered here rather than in SQL: JSON containment is not portable to SQLite
        # (the embedded default), and there are only ever a handful of webhooks.
        candidates = cls.objects.filter(Q(route__isnull=True) | Q(route_id=event.route_id), enabled=True)
        return [webhook for webhook in candidates if webhook.wants(event.kind)]


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: datetime | None = None) -> WebhookDeliveryQuerySet:
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now or timezone.now())


class WebhookDelivery(models.Model):
    """One event for one webhook, and how its attempts went."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(RouteEvent, on_delete=models.CASCADE, related_name="deliveries")
    payload = models.JSONField(help_text="The event as it was when it happened; each attempt adds its number.")
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField("last HTTP status", null=True, blank=True)
    last_error = models.CharField(max_length=LAST_ERROR_MAX, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep's query: pending rows whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"], condition=Q(state=DeliveryState.PENDING), name="webhook_delivery_due"
            ),
            models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_by_webhook"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook} #{self.pk} ({self.state})"

    @classmethod
    def queue(cls, event: RouteEvent) -> list[WebhookDelivery]:
        """A pending delivery of ``event`` for each webhook that wants it, due now."""
        webhooks = Webhook.for_event(event)
        if not webhooks:
            return []
        payload = event_payload(event)
        now = timezone.now()
        return cls.objects.bulk_create(
            cls(webhook=webhook, event=event, payload=payload, next_attempt_at=now, created_at=now)
            for webhook in webhooks
        )

    @classmethod
    def claim(cls, pk: int, now: datetime | None = None) -> WebhookDelivery | None:
        """Take the due attempt of delivery ``pk``, or None if it is not due or someone else took it.

        The UPDATE's condition is checked again once a concurrent claimer's row lock is released,
        so of two workers claiming together exactly one gets the row.
        """
        now = now or timezone.now()
        claimed = cls.objects.due(now).filter(pk=pk).update(next_attempt_at=now + timedelta(seconds=CLAIM_S))
        if not claimed:
            return None
        return cls.objects.select_related("webhook").get(pk=pk)

    def body(self) -> dict[str, Any]:
        """What this attempt POSTs: the payload snapshot and the attempt's number."""
        return {**self.payload, "delivery": self.pk, "attempt": self.attempts + 1}

    def record(self, status: int | None, error: str = "", now: datetime | None = None) -> None:
        """Save how the attempt went: delivered on a 2xx, else the next attempt or, after the last, failed."""
        now = now or timezone.now()
        self.attempts += 1
        self.last_status = status
        self.last_error = error[:LAST_ERROR_MAX]
        if status is not None and 200 <= status < 300:
            self.state, self.delivered_at, self.next_attempt_at = DeliveryState.DELIVERED, now, None
        else:
            wait_s = retry_after_s(self.attempts)
            if wait_s is None:
                self.state, self.next_attempt_at = DeliveryState.FAILED, None
            else:
                self.next_attempt_at = now + timedelta(seconds=wait_s)
        fields = ["attempts", "last_status", "last_error", "state", "delivered_at", "next_attempt_at"]
        type(self).objects.filter(pk=self.pk).update(**{name: getattr(self, name) for name in fields})

    def give_up(self, error: str) -> None:
        self.state, self.next_attempt_at, self.last_error = DeliveryState.FAILED, None, error[:LAST_ERROR_MAX]
        type(self).objects.filter(pk=self.pk).update(state=self.state, next_attempt_at=None, last_error=self.last_error)

    def retry_now(self) -> None:
        """An operator's retry: one more attempt, due at once, even after the delivery gave up."""
        self.state, self.next_attempt_at = DeliveryState.PENDING, timezone.now()
        type(self).objects.filter(pk=self.pk).exclude(state=DeliveryState.DELIVERED).update(
            state=self.state, next_attempt_at=self.next_attempt_at
        )


def retry_after_s(attempts: int) -> float | None:
    """The wait after ``attempts`` failed attempts, or None once there is no retry left."""
    schedule: list[float] = settings.VAJRACAST_WEBHOOK_RETRY_S
    return schedule[attempts - 1] if 1 <= attempts <= len(schedule) else None


def max_attempts() -> int:
    return len(settings.VAJRACAST_WEBHOOK_RETRY_S) + 1


def event_payload(event: RouteEvent) -> dict[str, Any]:
    return {
        "event": event.pk,
        "kind": event.kind,
        "message": event.message,
        "data": event.data,
        "route": {"id": event.route_id, "name": event.route.name},
        "created_at": event.time.isoformat(),
    }


def send_soon(delivery_ids: list[int], expires_s: float | None = None) -> None:
    """Hand the deliveries to a worker; if the broker is away, the sweep sends them later."""
    from routes.tasks import deliver_webhook

    for pk in delivery_ids:
        try:
            # No retries on a broker error: this may run in a route's pipeline thread, which must
            # not wait on the broker, and the row stays due for the sweep anyway.
            deliver_webhook.apply_async(args=[pk], retry=False, expires=expires_s)
        except Exception as exc:  # noqa: BLE001 - the sweep sends it instead
            log.warning("webhook delivery %s left for the sweep: %s", pk, exc)


@receiver(post_save, sender=RouteEvent, dispatch_uid="routes.webhook.queue")
def _queue_deliveries(sender: type[RouteEvent], instance: RouteEvent, created: bool, raw: bool, **kwargs: Any) -> None:
    # Every event reaches here, wherever it was recorded. The rows are written with the event (an
    # event rolled back leaves no delivery); the tasks go out after the commit, so a worker finds them.
    if not created or raw:
        return
    deliveries = WebhookDelivery.queue(instance)
    if deliveries:
        ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(lambda: send_soon(ids))
