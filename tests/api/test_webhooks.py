"""The webhooks API: admins only, messages that say what is wrong, and a secret shown once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind, Role
from routes.models import Route, RouteEvent, Webhook, WebhookDelivery

URL = "https://alerts.example.net/vajracast"
OWN_SECRET = "receiver-chosen-secret-7c41"


@pytest.fixture
def webhook(db: None) -> Webhook:
    return Webhook.objects.create(name="on-call", url=URL, secret=OWN_SECRET)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"url": "ftp://alerts.example.net/hook"},
            "url: A webhook URL must start with http:// or https://, e.g. https://alerts.example.net/vajracast.",
        ),
        (
            {"url": "alerts.example.net/hook"},
            "url: A webhook URL must start with http:// or https://, e.g. https://alerts.example.net/vajracast.",
        ),
        ({"url": "https://exa mple.net/"}, "url: This is not a valid http(s) URL."),
        (
            {"event_kinds": ["switched", "exploded"]},
            "event_kinds: Unknown event kind(s) exploded; use some of: " + ", ".join(EventKind.values) + ".",
        ),
        ({"route": 999999}, "route: There is no route with id 999999."),
        ({"name": ""}, "name: This field may not be blank."),
    ],
    ids=["ftp-scheme", "no-scheme", "malformed", "unknown-kind", "unknown-route", "no-name"],
)
def test_invalid_webhooks_are_refused_with_a_message(admin_api: APIClient, body: dict[str, Any], message: str) -> None:
    response = admin_api.post("/api/v1/webhooks/", {"name": "alerts", "url": URL, **body}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["message"] == message
    assert not Webhook.objects.exists()


def test_a_generated_secret_is_shown_once(admin_api: APIClient, route: Route) -> None:
    created = admin_api.post(
        "/api/v1/webhooks/",
        {"name": "alerts", "url": URL, "route": route.pk, "event_kinds": ["switched"]},
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    stored = Webhook.objects.get(pk=body["id"])
    assert body["secret"] == stored.secret
    assert len(stored.secret) >= 32
    assert (body["route"], body["event_kinds"], body["enabled"]) == (route.pk, ["switched"], True)
    for again in (admin_api.get("/api/v1/webhooks/"), admin_api.get(f"/api/v1/webhooks/{stored.pk}/")):
        assert stored.secret not in again.content.decode()
    assert "secret" not in admin_api.get(f"/api/v1/webhooks/{stored.pk}/").json()


def test_a_chosen_secret_is_never_echoed_and_kept_by_updates(admin_api: APIClient) -> None:
    created = admin_api.post("/api/v1/webhooks/", {"name": "alerts", "url": URL, "secret": OWN_SECRET}, format="json")
    path = f"/api/v1/webhooks/{created.json()['id']}/"

    updated = admin_api.patch(path, {"enabled": False}, format="json")
    replaced = admin_api.put(path, {"name": "alerts", "url": URL + "/v2"}, format="json")

    for response in (created, updated, replaced):
        assert response.status_code in (200, 201), response.content
        assert OWN_SECRET not in response.content.decode()
        assert "secret" not in response.json()
    assert Webhook.objects.get().secret == OWN_SECRET


def test_an_empty_secret_generates_a_new_one(admin_api: APIClient, webhook: Webhook) -> None:
    response = admin_api.patch(f"/api/v1/webhooks/{webhook.pk}/", {"secret": ""}, format="json")

    assert response.status_code == 200, response.content
    webhook.refresh_from_db()
    assert response.json()["secret"] == webhook.secret != OWN_SECRET


def test_deliveries_are_listed_per_webhook(admin_api: APIClient, webhook: Webhook, route: Route) -> None:
    other = Webhook.objects.create(name="other", url=URL, event_kinds=["started"])
    RouteEvent.objects.create(route=route, kind=EventKind.SWITCHED, message="switched")
    RouteEvent.objects.create(route=route, kind=EventKind.STARTED, message="started")

    response = admin_api.get(f"/api/v1/webhooks/{webhook.pk}/deliveries/")

    assert response.status_code == 200, response.content
    [delivery] = response.json()["results"]
    assert (delivery["webhook"], delivery["state"], delivery["attempts"]) == (webhook.pk, "pending", 0)
    assert delivery["payload"]["kind"] == "switched"
    assert OWN_SECRET not in response.content.decode()
    assert WebhookDelivery.objects.filter(webhook=other).count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_reading_webhooks_needs_the_admin_role(
    api_client_for: Callable[[Role | None], APIClient], webhook: Webhook, role: Role
) -> None:
    """Unlike the rest of the API, reads too: receivers' addresses are not a viewer's business.
    Every method and role is in test_permissions' matrix."""
    response = api_client_for(role).get("/api/v1/webhooks/")

    assert response.status_code == 403
    assert response.json()["message"] == f"This needs the admin role; you have {role}."
