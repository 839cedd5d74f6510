"""The webhook admin: a generated secret shown once and never again, deliveries listed read-only,
and "retry now" giving a failed delivery another attempt."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from routes.choices import EventKind
from routes.models import DeliveryState, Route, RouteEvent, Webhook, WebhookDelivery
from routes.tasks import deliver_webhook

OWN_SECRET = "receiver-chosen-secret-7c41"


@pytest.fixture
def admin_site(db: None, django_user_model: type[AbstractUser]) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "unused"))
    return client


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(deliver_webhook, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


def _form(**fields: Any) -> dict[str, Any]:
    return {"name": "on-call", "url": "https://alerts.example.net/hook", "enabled": "on", **fields}


def test_a_new_webhook_gets_a_secret_shown_once(admin_site: Client, route: Route) -> None:
    added = admin_site.post(
        "/admin/routes/webhook/add/", _form(route=route.pk, event_kinds=["switched", "input_down"]), follow=True
    )

    webhook = Webhook.objects.get()
    assert added.status_code == 200
    assert webhook.secret in added.content.decode(), "shown in the message after saving"
    assert (webhook.route, webhook.event_kinds) == (route, ["switched", "input_down"])
    page = admin_site.get(f"/admin/routes/webhook/{webhook.pk}/change/").content.decode()
    assert webhook.secret not in page
    assert 'type="password"' in page


def test_a_chosen_secret_is_kept_when_left_blank_and_never_shown(admin_site: Client) -> None:
    added = admin_site.post("/admin/routes/webhook/add/", _form(secret=OWN_SECRET), follow=True)
    webhook = Webhook.objects.get()
    changed = admin_site.post(f"/admin/routes/webhook/{webhook.pk}/change/", _form(name="renamed"), follow=True)

    webhook.refresh_from_db()
    assert (webhook.name, webhook.secret) == ("renamed", OWN_SECRET)
    for response in (added, changed, admin_site.get(f"/admin/routes/webhook/{webhook.pk}/change/")):
        assert OWN_SECRET not in response.content.decode()


def test_a_bad_url_is_refused_with_a_message(admin_site: Client) -> None:
    response = admin_site.post("/admin/routes/webhook/add/", _form(url="ftp://alerts.example.net/hook"))

    assert response.status_code == 200
    assert "A webhook URL must start with http:// or https://" in response.content.decode()
    assert not Webhook.objects.exists()


def test_deliveries_are_listed_and_a_failed_one_retried_now(
    admin_site: Client, route: Route, sent: list[dict[str, Any]]
) -> None:
    webhook = Webhook.objects.create(name="on-call", url="https://alerts.example.net/hook", secret=OWN_SECRET)
    RouteEvent.objects.create(route=route, kind=EventKind.SWITCHED, message="switched")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.update(
        state=DeliveryState.FAILED, attempts=6, last_error="[Errno 111] Connection refused", next_attempt_at=None
    )

    listing = admin_site.get(f"/admin/routes/webhookdelivery/?state=failed&webhook__id__exact={webhook.pk}")
    html = listing.content.decode()
    assert listing.status_code == 200
    assert '<td class="field-state">Failed</td>' in html
    assert "[Errno 111] Connection refused" in html
    assert OWN_SECRET not in html
    assert admin_site.get(f"/admin/routes/webhook/{webhook.pk}/change/").status_code == 200
    assert admin_site.get("/admin/routes/webhookdelivery/add/").status_code == 403

    retried = admin_site.post(
        "/admin/routes/webhookdelivery/",
        {"action": "retry_deliveries", "_selected_action": [delivery.pk]},
        follow=True,
    )

    assert "1 delivery(ies) sent again." in retried.content.decode()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 6)
    assert WebhookDelivery.objects.due().filter(pk=delivery.pk).exists()
    assert [call["args"] for call in sent] == [[delivery.pk]]
