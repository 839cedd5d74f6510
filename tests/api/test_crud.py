"""Create, read, list, update, partially update and delete routes, inputs, outputs and profiles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind
from routes.models import Input, Output, Route, RouteEvent, TranscodeProfile

Payload = Callable[[dict[str, int]], dict[str, Any]]

# resource -> (model, create payload, full update payload, partial update payload); payloads get the ids of
# an existing route and profile.
RESOURCES: dict[str, tuple[type, Payload, Payload, Payload]] = {
    "routes": (
        Route,
        lambda ids: {"name": "sport", "failover_mode": "manual", "holdoff_s": 30},
        lambda ids: {"name": "sport-hd", "failover_mode": "auto", "failback": True, "input_timeout_ms": 500},
        lambda ids: {"enabled": True},
    ),
    "inputs": (
        Input,
        lambda ids: {"route": ids["route"], "name": "cam-1", "protocol": "srt", "port": 9001, "streamid": "cam1"},
        lambda ids: {
            "route": ids["route"],
            "name": "cam-1-rtmp",
            "protocol": "rtmp",
            "port": 1936,
            "streamid": "",
            "stream_key": "studio",
            "priority": 5,
        },
        lambda ids: {"timeout_ms": 1000},
    ),
    "outputs": (
        Output,
        lambda ids: {
            "route": ids["route"],
            "name": "cdn",
            "protocol": "rtmp",
            "url": "rtmp://cdn.example.net/live/abc",
            "profile": ids["profile"],
        },
        lambda ids: {
            "route": ids["route"],
            "name": "contribution",
            "protocol": "srt",
            "mode": "caller",
            "host": "rx.example.net",
            "port": 9100,
            "url": "",
            "profile": None,
        },
        lambda ids: {"enabled": False},
    ),
    "profiles": (
        TranscodeProfile,
        lambda ids: {
            "name": "720p50",
            "video_codec": "h264",
            "width": 1280,
            "height": 720,
            "fps": 50,
            "video_bitrate_kbps": 4000,
            "audio_codec": "aac",
            "audio_bitrate_kbps": 128,
        },
        lambda ids: {"name": "720p50-hevc", "video_codec": "hevc", "encoder": "software", "video_bitrate_kbps": 3000},
        lambda ids: {"preset": "fast"},
    ),
}


@pytest.fixture
def ids(route: Route) -> dict[str, int]:
    profile = TranscodeProfile.objects.create(name="passthrough", video_codec="copy")
    return {"route": route.pk, "profile": profile.pk}


def _assert_shows(body: dict[str, Any], sent: dict[str, Any]) -> None:
    shown = {name: body[name] for name in sent if name not in ("passphrase", "stream_key")}
    assert shown == {name: value for name, value in sent.items() if name in shown}


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_round_trip(admin_api: APIClient, ids: dict[str, int], resource: str) -> None:
    model, create, update, patch = RESOURCES[resource]
    collection = f"/api/v1/{resource}/"

    created = admin_api.post(collection, create(ids), format="json")
    assert created.status_code == 201, created.content
    _assert_shows(created.json(), create(ids))
    detail = f"{collection}{created.json()['id']}/"

    assert admin_api.get(detail).json() == created.json()
    listed = admin_api.get(collection).json()
    assert created.json()["id"] in [item["id"] for item in listed["results"]]
    assert listed["count"] == model.objects.count()

    updated = admin_api.put(detail, update(ids), format="json")
    assert updated.status_code == 200, updated.content
    _assert_shows(updated.json(), update(ids))
    assert admin_api.get(detail).json() == updated.json()

    patched = admin_api.patch(detail, patch(ids), format="json")
    assert patched.status_code == 200, patched.content
    _assert_shows(patched.json(), patch(ids))
    _assert_shows(patched.json(), {k: v for k, v in update(ids).items() if k not in patch(ids)})

    assert admin_api.delete(detail).status_code == 204
    assert admin_api.get(detail).status_code == 404
    assert not model.objects.filter(pk=created.json()["id"]).exists()


def test_route_shows_its_inputs_by_priority_and_its_outputs(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input], make_output: Callable[..., Output]
) -> None:
    backup = make_input(name="backup", port=9002, priority=2)
    main = make_input(name="main", port=9001, priority=1)
    out = make_output(name="out")

    body = admin_api.get(f"/api/v1/routes/{route.pk}/").json()

    assert [i["id"] for i in body["inputs"]] == [main.pk, backup.pk]
    assert [o["id"] for o in body["outputs"]] == [out.pk]


def test_input_without_priority_goes_after_the_last(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input]
) -> None:
    make_input(name="main", port=9001, priority=1)
    make_input(name="backup", port=9002, priority=7)

    response = admin_api.post(
        "/api/v1/inputs/", {"route": route.pk, "name": "spare", "protocol": "srt", "port": 9003}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["priority"] == 8


def test_first_input_without_priority_is_the_main_one(admin_api: APIClient, route: Route) -> None:
    response = admin_api.post(
        "/api/v1/inputs/", {"route": route.pk, "name": "main", "protocol": "srt", "port": 9001}, format="json"
    )

    assert response.json()["priority"] == 1


@pytest.mark.parametrize("resource", ["inputs", "outputs"])
def test_inputs_and_outputs_filter_by_route(
    admin_api: APIClient, make_input: Callable[..., Input], make_output: Callable[..., Output], resource: str
) -> None:
    sport = Route.objects.create(name="sport")
    make_input(name="news-cam", port=9001)
    make_input(route=sport, name="sport-cam", port=9002)
    make_output(name="news-out")
    make_output(route=sport, name="sport-out", port=5002)

    body = admin_api.get(f"/api/v1/{resource}/", {"route": sport.pk}).json()

    assert [item["name"] for item in body["results"]] == [f"sport-{'cam' if resource == 'inputs' else 'out'}"]


def test_deleting_a_route_deletes_its_inputs_outputs_and_events(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input], make_output: Callable[..., Output]
) -> None:
    make_input(port=9001)
    make_output()
    RouteEvent.objects.create(route=route, kind=EventKind.STARTED)

    assert admin_api.delete(f"/api/v1/routes/{route.pk}/").status_code == 204

    assert (Input.objects.count(), Output.objects.count(), RouteEvent.objects.count()) == (0, 0, 0)


def test_deleting_the_pinned_input_returns_the_route_to_automatic(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input]
) -> None:
    pinned = make_input(port=9001)
    route.pin_input(pinned.pk)

    assert admin_api.delete(f"/api/v1/inputs/{pinned.pk}/").status_code == 204

    assert admin_api.get(f"/api/v1/routes/{route.pk}/").json()["pinned_input"] is None
