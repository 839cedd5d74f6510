"""Who may call what: one row per endpoint and action, one expected status per role.

viewer reads, operator also starts, stops and switches, admin does everything; without credentials
every call is 401. A refused call changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind, Role
from routes.models import Input, Node, Output, Route, RouteEvent, TranscodeProfile, Webhook

ROLES = (None, Role.VIEWER, Role.OPERATOR, Role.ADMIN)

# Expected status for (anonymous, viewer, operator, admin).
READ = (401, 200, 200, 200)
ADMIN_READ = (401, 403, 403, 200)
CREATE = (401, 403, 403, 201)
CHANGE = (401, 403, 403, 200)
DELETE = (401, 403, 403, 204)
OPERATE = (401, 403, 200, 200)
NOT_ALLOWED = (401, 403, 403, 405)

Body = Callable[[dict[str, int]], dict[str, Any]] | None

# (label, method, path template filled from the world's ids, body, expected statuses)
CASES: list[tuple[str, str, str, Body, tuple[int, int, int, int]]] = [
    ("routes-list", "get", "/api/v1/routes/", None, READ),
    ("routes-create", "post", "/api/v1/routes/", lambda w: {"name": "sport"}, CREATE),
    ("routes-retrieve", "get", "/api/v1/routes/{route}/", None, READ),
    (
        "routes-update",
        "put",
        "/api/v1/routes/{route}/",
        lambda w: {"name": "news-2", "failover_mode": "manual"},
        CHANGE,
    ),
    ("routes-partial-update", "patch", "/api/v1/routes/{route}/", lambda w: {"failback": True}, CHANGE),
    ("routes-delete", "delete", "/api/v1/routes/{route}/", None, DELETE),
    ("routes-start", "post", "/api/v1/routes/{route}/start/", None, OPERATE),
    ("routes-stop", "post", "/api/v1/routes/{route}/stop/", None, OPERATE),
    ("routes-switch", "post", "/api/v1/routes/{route}/switch/", lambda w: {"input": w["backup"]}, OPERATE),
    ("routes-status", "get", "/api/v1/routes/{route}/status/", None, READ),
    ("inputs-list", "get", "/api/v1/inputs/", None, READ),
    (
        "inputs-create",
        "post",
        "/api/v1/inputs/",
        lambda w: {"route": w["route"], "name": "spare", "protocol": "srt", "port": 9003},
        CREATE,
    ),
    ("inputs-retrieve", "get", "/api/v1/inputs/{input}/", None, READ),
    (
        "inputs-update",
        "put",
        "/api/v1/inputs/{input}/",
        lambda w: {"route": w["route"], "name": "main", "protocol": "srt", "port": 9001, "latency_ms": 200},
        CHANGE,
    ),
    ("inputs-partial-update", "patch", "/api/v1/inputs/{input}/", lambda w: {"latency_ms": 300}, CHANGE),
    ("inputs-delete", "delete", "/api/v1/inputs/{input}/", None, DELETE),
    ("outputs-list", "get", "/api/v1/outputs/", None, READ),
    (
        "outputs-create",
        "post",
        "/api/v1/outputs/",
        lambda w: {"route": w["route"], "name": "cdn", "protocol": "rtmp", "url": "rtmp://cdn.example.net/live"},
        CREATE,
    ),
    ("outputs-retrieve", "get", "/api/v1/outputs/{output}/", None, READ),
    (
        "outputs-update",
        "put",
        "/api/v1/outputs/{output}/",
        lambda w: {"route": w["route"], "name": "out", "protocol": "udp", "host": "198.51.100.20", "port": 5002},
        CHANGE,
    ),
    ("outputs-partial-update", "patch", "/api/v1/outputs/{output}/", lambda w: {"enabled": False}, CHANGE),
    ("outputs-delete", "delete", "/api/v1/outputs/{output}/", None, DELETE),
    ("profiles-list", "get", "/api/v1/profiles/", None, READ),
    (
        "profiles-create",
        "post",
        "/api/v1/profiles/",
        lambda w: {"name": "sd", "video_codec": "h264", "video_bitrate_kbps": 2500},
        CREATE,
    ),
    ("profiles-retrieve", "get", "/api/v1/profiles/{profile}/", None, READ),
    ("profiles-update", "put", "/api/v1/profiles/{profile}/", lambda w: {"name": "hd", "video_codec": "copy"}, CHANGE),
    ("profiles-partial-update", "patch", "/api/v1/profiles/{profile}/", lambda w: {"name": "hd-copy"}, CHANGE),
    ("profiles-delete", "delete", "/api/v1/profiles/{profile}/", None, DELETE),
    ("nodes-list", "get", "/api/v1/nodes/", None, READ),
    ("nodes-retrieve", "get", "/api/v1/nodes/{node}/", None, READ),
    ("nodes-create", "post", "/api/v1/nodes/", lambda w: {"name": "node-2"}, NOT_ALLOWED),
    ("nodes-update", "put", "/api/v1/nodes/{node}/", lambda w: {"name": "node-2"}, NOT_ALLOWED),
    ("nodes-partial-update", "patch", "/api/v1/nodes/{node}/", lambda w: {"name": "node-2"}, NOT_ALLOWED),
    ("nodes-delete", "delete", "/api/v1/nodes/{node}/", None, NOT_ALLOWED),
    ("events-list", "get", "/api/v1/events/", None, READ),
    ("events-retrieve", "get", "/api/v1/events/{event}/", None, READ),
    ("events-create", "post", "/api/v1/events/", lambda w: {"route": w["route"], "kind": "error"}, NOT_ALLOWED),
    ("events-update", "put", "/api/v1/events/{event}/", lambda w: {"route": w["route"], "kind": "error"}, NOT_ALLOWED),
    ("events-partial-update", "patch", "/api/v1/events/{event}/", lambda w: {"message": "edited"}, NOT_ALLOWED),
    ("events-delete", "delete", "/api/v1/events/{event}/", None, NOT_ALLOWED),
    ("webhooks-list", "get", "/api/v1/webhooks/", None, ADMIN_READ),
    (
        "webhooks-create",
        "post",
        "/api/v1/webhooks/",
        lambda w: {"name": "cdn", "url": "https://hooks.example.net/"},
        CREATE,
    ),
    ("webhooks-retrieve", "get", "/api/v1/webhooks/{webhook}/", None, ADMIN_READ),
    ("webhooks-deliveries", "get", "/api/v1/webhooks/{webhook}/deliveries/", None, ADMIN_READ),
    (
        "webhooks-update",
        "put",
        "/api/v1/webhooks/{webhook}/",
        lambda w: {"name": "alerts", "url": "https://alerts.example.net/v2"},
        CHANGE,
    ),
    ("webhooks-partial-update", "patch", "/api/v1/webhooks/{webhook}/", lambda w: {"enabled": False}, CHANGE),
    ("webhooks-delete", "delete", "/api/v1/webhooks/{webhook}/", None, DELETE),
]


def _expand() -> list[Any]:
    params = []
    for label, method, path, body, expected in CASES:
        for role, status in zip(ROLES, expected, strict=True):
            role_name = role.value if role else "anonymous"
            params.append(pytest.param(method, path, body, role, status, id=f"{label}-{role_name}"))
    return params


@pytest.fixture
def world(route: Route, make_input: Callable[..., Input], make_output: Callable[..., Output]) -> dict[str, int]:
    """One of everything the API exposes, with the ids the paths refer to."""
    main = make_input(name="main", port=9001)
    backup = make_input(name="backup", port=9002)
    output = make_output(name="out")
    profile = TranscodeProfile.objects.create(name="hd", video_codec="copy")
    node = Node.objects.create(name="node-1")
    event = RouteEvent.objects.create(route=route, kind=EventKind.STARTED, message="started")
    webhook = Webhook.objects.create(name="alerts", url="https://alerts.example.net/")
    return {
        "route": route.pk,
        "input": main.pk,
        "backup": backup.pk,
        "output": output.pk,
        "profile": profile.pk,
        "node": node.pk,
        "event": event.pk,
        "webhook": webhook.pk,
    }


def _snapshot() -> list[list[dict[str, Any]]]:
    return [
        list(m.objects.order_by("pk").values())
        for m in (Route, Input, Output, TranscodeProfile, Node, RouteEvent, Webhook)
    ]


@pytest.mark.parametrize(("method", "path", "body", "role", "expected"), _expand())
def test_role_matrix(
    api_client_for: Callable[[Role | None], APIClient],
    world: dict[str, int],
    method: str,
    path: str,
    body: Body,
    role: Role | None,
    expected: int,
) -> None:
    client = api_client_for(role)
    before = _snapshot()

    response = getattr(client, method)(path.format(**world), body(world) if body else None, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert isinstance(response.json()["message"], str)
        assert _snapshot() == before, "a refused call must not change anything"
