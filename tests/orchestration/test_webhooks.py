"""Webhooks from a live failover: a real worker records the switch, signs and posts it, and retries
a receiver that failed the first time. The receivers are HTTP servers in this process."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from routes.choices import EventKind, Role
from routes.models import DeliveryState, Webhook, WebhookDelivery
from tests.orchestration.cluster import Cluster, events, wait_for
from tests.orchestration.test_failover import MAIN_TSID, SWITCH_SEEN_S, main_on_air_backup_standing_by
from tests.support.webhook_receiver import Received, WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)

RETRY_S = 1.0


def test_a_failover_is_posted_signed_and_a_failed_delivery_is_retried(
    cluster: Cluster, operator_api: APIClient, api_client_for: Any, django_user_model: type[AbstractUser]
) -> None:
    # The worker and beat read these at start: one retry, a second after a failure, swept every second.
    cluster.settings_env.update(VAJRACAST_WEBHOOK_RETRY_S=str(RETRY_S), VAJRACAST_WEBHOOK_SWEEP_S="1")
    cluster.beat()
    with (
        WebhookReceiver() as steady,
        WebhookReceiver(statuses=[500, 200]) as flaky,
        main_on_air_backup_standing_by(cluster, operator_api) as setup,
    ):
        everywhere = Webhook.objects.create(name="every route", url=steady.url, event_kinds=["switched"])
        this_route = Webhook.objects.create(
            name="news only", url=flaky.url, route=setup.route, event_kinds=["switched"]
        )

        killed_at = time.monotonic()
        os.kill(setup.encoders[MAIN_TSID].pid, signal.SIGKILL)
        setup.encoders[MAIN_TSID].popen.wait(timeout=10)
        wait_for(lambda: events(setup.route, EventKind.SWITCHED), SWITCH_SEEN_S, "the switched event")
        [switched] = events(setup.route, EventKind.SWITCHED)

        took = wait_for(lambda: steady.requests(), 15, "the switch posted to the global webhook")
        print(f"the switch reached the receiver {time.monotonic() - killed_at:.2f}s after the kill ({took:.2f}s wait)")
        [posted] = steady.requests()
        delivery = WebhookDelivery.objects.get(webhook=everywhere)
        assert_signed_switch(posted, everywhere.secret, delivery, attempt=1)
        assert json.loads(posted.body) == {
            "event": switched.pk,
            "kind": "switched",
            "message": switched.message,
            "data": switched.data,
            "route": {"id": setup.route.pk, "name": "news"},
            "created_at": switched.time.isoformat(),
            "delivery": delivery.pk,
            "attempt": 1,
        }

        # The per-route receiver answered 500 first; the sweep sent the retry after the backoff.
        wait_for(lambda: len(flaky.requests()) == 2, 30, "the retry to the per-route webhook")
        retried = WebhookDelivery.objects.get(webhook=this_route)
        wait_for(lambda: refreshed(retried).state == DeliveryState.DELIVERED, 10, "the retried delivery recorded")
        first, second = flaky.requests()
        assert_signed_switch(first, this_route.secret, retried, attempt=1)
        assert_signed_switch(second, this_route.secret, retried, attempt=2)
        assert second.at - first.at >= RETRY_S - 0.1
        print(f"retry {second.at - first.at:.2f}s after the first attempt")
        assert (retried.attempts, retried.last_status, retried.last_error) == (2, 200, "")

        # Only the switch: neither webhook asked for the input_down event that came with it.
        assert events(setup.route, EventKind.INPUT_DOWN)
        time.sleep(RETRY_S + 1)
        assert (len(steady.requests()), len(flaky.requests())) == (1, 2)
        assert WebhookDelivery.objects.count() == 2

    # What an admin sees: the delivery, delivered after two attempts, in the admin and the API.
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "unused"))
    page = admin.get(f"/admin/routes/webhookdelivery/?webhook__id__exact={this_route.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<td class="field-state">Delivered</td>' in html
    assert '<td class="field-attempts">2</td>' in html
    assert '<td class="field-last_status">200</td>' in html
    listed = api_client_for(Role.ADMIN).get(f"/api/v1/webhooks/{this_route.pk}/deliveries/").json()["results"]
    assert [(d["id"], d["state"], d["attempts"], d["last_status"]) for d in listed] == [
        (retried.pk, "delivered", 2, 200)
    ]


def refreshed(delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.refresh_from_db()
    return delivery


def assert_signed_switch(request: Received, secret: str, delivery: WebhookDelivery, attempt: int) -> None:
    assert request.signature_valid(secret)
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("VajraCast-Webhook/")
    assert headers["X-VajraCast-Event"] == "switched"
    assert headers["X-VajraCast-Delivery"] == str(delivery.pk)
    assert abs(int(headers["X-VajraCast-Timestamp"]) - time.time()) < 60
    body = json.loads(request.body)
    assert (body["kind"], body["delivery"], body["attempt"]) == ("switched", delivery.pk, attempt)
