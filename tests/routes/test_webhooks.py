"""Webhooks one step at a time: which deliveries an event makes, one attempt, the backoff, the sweep."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import Settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from routes import webhooks
from routes.choices import EventKind
from routes.models import DeliveryState, Route, RouteEvent, Webhook, WebhookDelivery
from routes.models.webhook import retry_after_s
from routes.tasks import deliver_webhook
from tests.support.processes import free_port
from tests.support.webhook_receiver import WebhookReceiver
from vajracast.env import env_seconds

SECRET = "whsec-test"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The delivery tasks sent to the broker (not sent for real)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver_webhook, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def retries(settings: Settings) -> list[float]:
    settings.VAJRACAST_WEBHOOK_RETRY_S = [5, 30]
    return settings.VAJRACAST_WEBHOOK_RETRY_S


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def queued(route: Route, receiver: WebhookReceiver, sent: list[dict[str, Any]]) -> Callable[..., WebhookDelivery]:
    """A "switched" event of ``route``, and its pending delivery to the one webhook for ``url``
    (default: the receiver)."""

    def make(url: str | None = None) -> WebhookDelivery:
        webhook, _ = Webhook.objects.get_or_create(
            url=url or receiver.url, defaults={"name": "alerts", "secret": SECRET}
        )
        event = RouteEvent.objects.create(
            route=route, kind=EventKind.SWITCHED, message='switched from "main" to "backup"', data={"from": 1, "to": 2}
        )
        return WebhookDelivery.objects.get(webhook=webhook, event=event)

    return make


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_signature_is_an_hmac_of_the_timestamp_and_the_body() -> None:
    body = b'{"kind":"switched"}'

    # Computed separately: echo -n '1700000000.{"kind":"switched"}' | openssl dgst -sha256 -hmac whsec-test
    expected = "sha256=90842fbc44e42473e6aa5db65ef410edabc9bfd442fae610b906a3a088425f0e"
    assert webhooks.signature(SECRET, 1700000000, body) == expected
    assert webhooks.signature(SECRET, 1700000001, body) != expected
    assert webhooks.signature("another", 1700000000, body) != expected


def test_backoff_schedule(settings: Settings) -> None:
    assert settings.VAJRACAST_WEBHOOK_RETRY_S == [5, 30, 120, 600, 3600]

    assert [retry_after_s(attempts) for attempts in range(1, 7)] == [5, 30, 120, 600, 3600, None]


@pytest.mark.parametrize(("raw", "expected"), [("1", [1.0]), (" 0.5, 2,10 ", [0.5, 2.0, 10.0]), ("", [5.0])])
def test_the_schedule_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list) -> None:
    monkeypatch.setenv("VAJRACAST_WEBHOOK_RETRY_S", raw)

    assert env_seconds("VAJRACAST_WEBHOOK_RETRY_S", [5.0]) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("5,soon", "VAJRACAST_WEBHOOK_RETRY_S must be seconds separated by commas (5,30,120), got '5,soon'."),
        ("5,-1", "VAJRACAST_WEBHOOK_RETRY_S must hold durations from 0 to 86400 s, got '5,-1'."),
    ],
)
def test_a_bad_schedule_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("VAJRACAST_WEBHOOK_RETRY_S", raw)

    with pytest.raises(ImproperlyConfigured) as refused:
        env_seconds("VAJRACAST_WEBHOOK_RETRY_S", [5.0])
    assert str(refused.value) == message


def test_an_event_is_queued_for_the_enabled_webhooks_of_its_route_and_kind(
    db: None, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    news, sport = Route.objects.create(name="news"), Route.objects.create(name="sport")
    url = "https://alerts.example.net/hook"
    everywhere = Webhook.objects.create(name="everywhere", url=url)
    starts = Webhook.objects.create(name="starts", url=url, event_kinds=["started"])
    news_switches = Webhook.objects.create(name="news switches", url=url, route=news, event_kinds=["switched"])
    sport_default = Webhook.objects.create(name="sport", url=url, route=sport)
    Webhook.objects.create(name="off", url=url, enabled=False)

    def receivers(route: Route, kind: str) -> set[str]:
        with django_capture_on_commit_callbacks(execute=True):
            event = RouteEvent.objects.create(route=route, kind=kind, message=kind)
        return set(event.deliveries.values_list("webhook__name", flat=True))

    assert receivers(news, EventKind.SWITCHED) == {everywhere.name, news_switches.name}
    assert receivers(sport, EventKind.SWITCHED) == {everywhere.name, sport_default.name}
    assert receivers(news, EventKind.STARTED) == {starts.name}
    assert receivers(sport, EventKind.INPUT_DOWN) == {everywhere.name, sport_default.name}
    assert receivers(news, EventKind.TRANSCODER_OK) == set()
    # One task per delivery, sent after the commit, carrying only the delivery's id.
    assert sorted(call["args"][0] for call in sent) == sorted(WebhookDelivery.objects.values_list("pk", flat=True))
    assert all(call["args"] == [call["args"][0]] and isinstance(call["args"][0], int) for call in sent)


def test_no_task_is_sent_before_the_commit(
    queued: Callable[..., WebhookDelivery], sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        delivery = queued()

    assert sent == []
    for callback in callbacks:
        callback()
    assert [call["args"] for call in sent] == [[delivery.pk]]


def test_the_payload_is_a_snapshot_of_the_event(route: Route, queued: Callable[..., WebhookDelivery]) -> None:
    delivery = queued()
    event = delivery.event
    route.name = "renamed later"
    route.save()

    assert WebhookDelivery.objects.get(pk=delivery.pk).payload == {
        "event": event.pk,
        "kind": "switched",
        "message": 'switched from "main" to "backup"',
        "data": {"from": 1, "to": 2},
        "route": {"id": route.pk, "name": "news"},
        "created_at": event.time.isoformat(),
    }
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at <= timezone.now()) == ("pending", 0, True)


def test_an_attempt_posts_the_signed_event(receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery]) -> None:
    delivery = queued()

    assert webhooks.attempt(delivery.pk) == DeliveryState.DELIVERED

    [request] = receiver.requests()
    assert request.path == "/hook"
    assert request.signature_valid(SECRET)
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "VajraCast-Webhook/0.1.0"
    assert (headers["X-VajraCast-Event"], headers["X-VajraCast-Delivery"]) == ("switched", str(delivery.pk))
    assert abs(int(headers["X-VajraCast-Timestamp"]) - timezone.now().timestamp()) < 60
    assert json.loads(request.body) == {**delivery.payload, "delivery": delivery.pk, "attempt": 1}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status, delivery.last_error) == ("delivered", 1, 200, "")
    assert delivery.next_attempt_at is None
    assert delivery.delivered_at is not None


def test_an_error_status_is_retried_after_the_backoff(
    receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery], retries: list[float]
) -> None:
    receiver.statuses = [500, 200]
    delivery = queued()

    before = timezone.now()
    assert webhooks.attempt(delivery.pk) == DeliveryState.PENDING
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 500, "HTTP 500 Internal Server Error")
    assert before + timedelta(seconds=5) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=5)
    assert webhooks.attempt(delivery.pk) == "not due"

    make_due(delivery)
    assert webhooks.attempt(delivery.pk) == DeliveryState.DELIVERED

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 2, 200)
    assert [json.loads(r.body)["attempt"] for r in receiver.requests()] == [1, 2]


def test_a_dead_receiver_is_retried_until_the_last_attempt_fails(
    queued: Callable[..., WebhookDelivery], retries: list[float]
) -> None:
    delivery = queued(url=f"http://127.0.0.1:{free_port()}/hook")  # nobody listens there

    outcomes = []
    for _ in range(3):
        make_due(delivery)
        outcomes.append(webhooks.attempt(delivery.pk))
        delivery.refresh_from_db()
        assert delivery.last_status is None
        assert "refused" in delivery.last_error

    assert outcomes == ["pending", "pending", "failed"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert webhooks.attempt(delivery.pk) == "not due"


def test_a_receiver_that_does_not_answer_times_out(
    receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery], settings: Settings
) -> None:
    settings.VAJRACAST_WEBHOOK_TIMEOUT_S = 1
    receiver.delay_s = 3
    delivery = queued()

    assert webhooks.attempt(delivery.pk) == DeliveryState.PENDING

    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, None, "no answer within 1 s")
    assert delivery.next_attempt_at > timezone.now()


def test_a_redirect_is_not_followed(receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery]) -> None:
    receiver.statuses = [302]
    delivery = queued()

    assert webhooks.attempt(delivery.pk) == DeliveryState.PENDING

    delivery.refresh_from_db()
    assert (delivery.last_status, len(receiver.requests())) == (302, 1)


def test_a_webhook_disabled_after_the_event_sends_nothing(
    receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery]
) -> None:
    delivery = queued()
    Webhook.objects.update(enabled=False)

    assert webhooks.attempt(delivery.pk) == DeliveryState.FAILED

    assert receiver.requests() == []
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_error) == (0, "not sent: the webhook was disabled")


def test_a_claimed_attempt_is_made_once(receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery]) -> None:
    delivery = queued()

    assert WebhookDelivery.claim(delivery.pk) is not None
    assert WebhookDelivery.claim(delivery.pk) is None
    assert webhooks.attempt(delivery.pk) == "not due"
    assert receiver.requests() == []


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_claiming_together_one_gets_the_attempt(
    queued: Callable[..., WebhookDelivery],
) -> None:
    delivery = queued()
    start = threading.Barrier(2)
    results: list[bool] = []

    def claim() -> None:
        try:
            start.wait(timeout=10)
            results.append(WebhookDelivery.claim(delivery.pk) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False, True]


def test_a_worker_with_every_sender_busy_leaves_the_delivery_due(
    receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery]
) -> None:
    delivery = queued()
    held = [webhooks._senders.acquire(blocking=False) for _ in range(webhooks.SENDERS_PER_WORKER)]
    try:
        assert webhooks.attempt(delivery.pk) == "busy; left for the sweep"
    finally:
        for _ in held:
            webhooks._senders.release()

    assert WebhookDelivery.objects.due().filter(pk=delivery.pk).exists()
    assert receiver.requests() == []


def test_the_sweep_sends_the_due_deliveries_only(
    queued: Callable[..., WebhookDelivery], sent: list[dict[str, Any]], settings: Settings
) -> None:
    due, later, done = queued(), queued(), queued()
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))
    WebhookDelivery.objects.filter(pk=done.pk).update(state=DeliveryState.DELIVERED, next_attempt_at=None)

    assert webhooks.sweep() == 1

    assert sent == [{"args": [due.pk], "retry": False, "expires": settings.VAJRACAST_WEBHOOK_SWEEP_S}]


def test_a_failed_delivery_retried_by_hand_gets_one_more_attempt(
    receiver: WebhookReceiver, queued: Callable[..., WebhookDelivery], retries: list[float]
) -> None:
    delivery = queued()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=3, next_attempt_at=None)
    delivery.refresh_from_db()

    delivery.retry_now()

    assert webhooks.attempt(delivery.pk) == DeliveryState.DELIVERED
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 4)
