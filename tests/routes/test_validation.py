"""Every configuration rule, as the API reports it: the field at fault and a message an engineer understands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.models import Input, Output, Route, TranscodeProfile

ROUTE = object()  # replaced by the id of the existing route
DROP = object()  # removes the key from the base payload

BASE: dict[str, dict[str, Any]] = {
    "routes": {"name": "sport"},
    "inputs": {"route": ROUTE, "name": "cam", "protocol": "srt", "port": 9500},
    "outputs": {"route": ROUTE, "name": "cdn", "protocol": "udp", "host": "198.51.100.30", "port": 5500},
    "profiles": {"name": "sd", "video_codec": "h264", "video_bitrate_kbps": 2000},
}
NO_PORT = {"port": DROP}
COPY_VIDEO = {"video_codec": "copy", "video_bitrate_kbps": DROP}

# (resource, changes to its base payload, field at fault, fragment of the message)
REFUSED = [
    ("routes", {"name": "news"}, "name", "Another route already has this name"),
    ("routes", {"holdoff_s": 3601}, "holdoff_s", "at most 3600 s"),
    ("routes", {"input_timeout_ms": 49}, "input_timeout_ms", "below 50 ms"),
    ("routes", {"failover_mode": "random"}, "failover_mode", "use one of: auto, manual"),
    ("inputs", {"priority": 1}, "priority", 'Input "main" of this route already has priority 1'),
    ("inputs", {"name": "main"}, "name", "This route already has an input with this name"),
    ("inputs", {"streamid": "s" * 513}, "streamid", "An SRT stream ID is at most 512 characters"),
    ("inputs", {"passphrase": "p" * 9}, "passphrase", "must be 10 to 79 characters long; this one has 9"),
    ("inputs", {"passphrase": "p" * 80}, "passphrase", "must be 10 to 79 characters long"),
    ("inputs", {"pbkeylen": 20}, "pbkeylen", "use one of: 16, 24, 32"),
    ("inputs", {"latency_ms": 19}, "latency_ms", "SRT latency must be at least 20 ms"),
    ("inputs", {"latency_ms": 8001}, "latency_ms", "SRT latency must be at most 8000 ms"),
    ("inputs", {"port": 0}, "port", "A port is a number from 1 to 65535"),
    ("inputs", {"port": 65536}, "port", "A port is a number from 1 to 65535"),
    ("inputs", {"timeout_ms": 49}, "timeout_ms", "below 50 ms would flag healthy inputs as down"),
    ("inputs", {"timeout_ms": 60001}, "timeout_ms", "at most 60000 ms"),
    ("inputs", NO_PORT, "port", "An SRT listener needs the UDP port it listens on"),
    ("inputs", {"mode": "caller"}, "host", "An SRT caller needs the peer's host name or address"),
    ("inputs", {"mode": "caller", "host": "enc.example.net", **NO_PORT}, "port", "An SRT caller needs the peer's UDP"),
    ("inputs", {"mode": "rendezvous"}, "host", "An SRT rendezvous needs the peer's host"),
    ("inputs", {"protocol": "rtmp", **NO_PORT}, "stream_key", "An RTMP input needs the stream key"),
    ("inputs", {"protocol": "udp", **NO_PORT}, "port", "A UDP input needs the port it receives on"),
    ("inputs", {"protocol": "udp", "host": "encoder.local"}, "host", "as an IP address"),
    ("inputs", {"protocol": "http", **NO_PORT}, "url", "An HTTP (MPEG-TS) input needs a URL"),
    ("inputs", {"protocol": "hls", "url": "rtmp://cdn/live", **NO_PORT}, "url", "takes a http:// or https:// URL"),
    ("inputs", {"protocol": "file", **NO_PORT}, "url", "A file input needs the path of the file"),
    (
        "inputs",
        {"protocol": "rtmp", "stream_key": "studio", "passphrase": "0123456789"},
        "passphrase",
        "Only SRT uses a passphrase",
    ),
    ("inputs", {"protocol": "udp", "streamid": "cam"}, "streamid", "Only SRT uses a stream ID"),
    ("inputs", {"stream_key": "studio"}, "stream_key", "Only RTMP uses a stream key"),
    ("outputs", {"name": "out"}, "name", "This route already has an output with this name"),
    ("outputs", {"protocol": "rtmp", "host": DROP, **NO_PORT}, "url", "An RTMP output needs a URL"),
    ("outputs", {"protocol": "rtmp", "url": "https://cdn/live"}, "url", "takes a rtmp:// or rtmps:// URL"),
    ("outputs", {"host": DROP}, "host", "A UDP output needs the destination address"),
    ("outputs", NO_PORT, "port", "A UDP output needs the destination port"),
    ("outputs", {"protocol": "srt", "host": DROP}, "host", "An SRT caller needs the peer's host"),
    ("outputs", {"protocol": "srt", "mode": "listener", **NO_PORT}, "port", "An SRT listener needs the UDP port"),
    ("outputs", {"passphrase": "0123456789"}, "passphrase", "Only SRT uses a passphrase"),
    ("outputs", {"protocol": "srt", "stream_key": "studio"}, "stream_key", "Only RTMP uses a stream key"),
    ("outputs", {"protocol": "srt", "latency_ms": 8001}, "latency_ms", "at most 8000 ms"),
    ("profiles", {"name": "hd"}, "name", "already exists"),
    ("profiles", {**COPY_VIDEO, "width": 1280}, "width", "Video is copied as it is"),
    ("profiles", {**COPY_VIDEO, "height": 720}, "height", "Video is copied as it is"),
    ("profiles", {**COPY_VIDEO, "fps": 25}, "fps", "Video is copied as it is"),
    ("profiles", {"video_codec": "copy"}, "video_bitrate_kbps", "Video is copied as it is"),
    ("profiles", {**COPY_VIDEO, "gop": 50}, "gop", "Video is copied as it is"),
    ("profiles", {**COPY_VIDEO, "encoder": "vaapi"}, "encoder", "no encoder is used, leave this on auto"),
    ("profiles", {"video_bitrate_kbps": DROP}, "video_bitrate_kbps", "Encoding video needs a bitrate"),
    ("profiles", {"width": 1281}, "width", "Width must be an even number of pixels"),
    ("profiles", {"height": 721}, "height", "Height must be an even number of pixels"),
    ("profiles", {"width": 7682}, "width", "Width must be between 16 and 7680"),
    ("profiles", {"audio_codec": "aac"}, "audio_bitrate_kbps", "Encoding audio to AAC needs a bitrate"),
    ("profiles", {"audio_bitrate_kbps": 128}, "audio_bitrate_kbps", "Audio is copied as it is"),
]

# (resource, changes to its base payload, what the response then shows)
ACCEPTED = [
    ("inputs", {"passphrase": "p" * 10}, {"has_passphrase": True}),
    ("inputs", {"passphrase": "p" * 79, "pbkeylen": 32}, {"has_passphrase": True, "pbkeylen": 32}),
    ("inputs", {"streamid": "s" * 512}, {"streamid": "s" * 512}),
    ("inputs", {"latency_ms": 20, "timeout_ms": 50}, {"latency_ms": 20, "timeout_ms": 50}),
    ("inputs", {"latency_ms": 8000, "timeout_ms": 60000}, {"latency_ms": 8000, "timeout_ms": 60000}),
    ("inputs", {"port": 1}, {"port": 1, "mode": "listener"}),
    ("inputs", {"port": 65535}, {"port": 65535}),
    ("inputs", {"mode": "caller", "host": "enc.example.net"}, {"mode": "caller", "encoder_url": None}),
    ("inputs", {"protocol": "rtmp", "stream_key": "studio", **NO_PORT}, {"port": 1935, "mode": ""}),
    ("inputs", {"protocol": "udp", "host": "239.1.1.1"}, {"host": "239.1.1.1"}),
    ("inputs", {"protocol": "hls", "url": "https://cdn.example.net/live.m3u8", **NO_PORT}, {"port": None}),
    ("inputs", {"protocol": "file", "url": "/media/slate.ts", **NO_PORT}, {"url": "/media/slate.ts"}),
    ("outputs", {"protocol": "rtmp", "url": "rtmps://cdn.example.net/app/key", "host": DROP, **NO_PORT}, {}),
    ("outputs", {"protocol": "srt", "host": "rx.example.net"}, {"mode": "caller", "player_url": None}),
    ("outputs", {"protocol": "srt", "mode": "listener", "host": DROP, "passphrase": "p" * 10}, {"mode": "listener"}),
    ("profiles", {"width": 1280, "height": 720, "fps": 50, "gop": 100}, {"width": 1280, "height": 720}),
    ("profiles", {**COPY_VIDEO, "audio_codec": "aac", "audio_bitrate_kbps": 128}, {"video_bitrate_kbps": None}),
]


def _payload(resource: str, changes: dict[str, Any], route: Route) -> dict[str, Any]:
    merged = {**BASE[resource], **changes}
    return {key: route.pk if value is ROUTE else value for key, value in merged.items() if value is not DROP}


def _label(case: tuple[Any, ...]) -> str:
    resource, changes = case[0], case[1]
    shown = ",".join(f"{k}={'-' if v is DROP else str(v)[:12]}" for k, v in changes.items())
    return f"{resource}:{shown}"


@pytest.fixture
def existing(route: Route, make_input: Callable[..., Input], make_output: Callable[..., Output]) -> None:
    """What the uniqueness rules clash with: input "main" (priority 1), output "out", profile "hd"."""
    make_input(name="main", priority=1, port=9001)
    make_output(name="out")
    TranscodeProfile.objects.create(name="hd", video_codec="copy")


@pytest.mark.parametrize(
    ("resource", "changes", "field", "fragment"), [pytest.param(*c, id=_label(c)) for c in REFUSED]
)
@pytest.mark.usefixtures("existing")
def test_refused_with_a_field_message(
    admin_api: APIClient, route: Route, resource: str, changes: dict[str, Any], field: str, fragment: str
) -> None:
    model = {"routes": Route, "inputs": Input, "outputs": Output, "profiles": TranscodeProfile}[resource]
    before = model.objects.count()

    response = admin_api.post(f"/api/v1/{resource}/", _payload(resource, changes, route), format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]
    assert model.objects.count() == before


@pytest.mark.parametrize(("resource", "changes", "shown"), [pytest.param(*c, id=_label(c)) for c in ACCEPTED])
@pytest.mark.usefixtures("existing")
def test_accepted_at_the_limits(
    admin_api: APIClient, route: Route, resource: str, changes: dict[str, Any], shown: dict[str, Any]
) -> None:
    response = admin_api.post(f"/api/v1/{resource}/", _payload(resource, changes, route), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in shown} == shown


def test_refusals_of_one_request_are_all_reported(admin_api: APIClient, route: Route) -> None:
    payload = {"route": route.pk, "name": "cam", "protocol": "srt", "port": 70000, "latency_ms": 1, "pbkeylen": 8}

    errors = admin_api.post("/api/v1/inputs/", payload, format="json").json()["errors"]

    assert {"port", "latency_ms", "pbkeylen"} <= set(errors)


@pytest.mark.usefixtures("existing")
def test_update_is_checked_against_the_other_inputs_not_itself(admin_api: APIClient, route: Route) -> None:
    main = Input.objects.get(name="main")
    spare = admin_api.post("/api/v1/inputs/", _payload("inputs", {"name": "spare"}, route), format="json").json()

    unchanged = admin_api.patch(f"/api/v1/inputs/{main.pk}/", {"priority": 1, "name": "main"}, format="json")
    clash = admin_api.patch(f"/api/v1/inputs/{spare['id']}/", {"priority": 1}, format="json")
    renamed = admin_api.patch(f"/api/v1/inputs/{spare['id']}/", {"name": "main"}, format="json")

    assert unchanged.status_code == 200
    assert 'Input "main" of this route already has priority 1' in clash.json()["errors"]["priority"][0]
    assert "already has an input with this name" in renamed.json()["errors"]["name"][0]


def test_priority_and_name_may_repeat_across_routes(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input]
) -> None:
    make_input(name="main", priority=1, port=9001)
    sport = Route.objects.create(name="sport")

    response = admin_api.post(
        "/api/v1/inputs/",
        {"route": sport.pk, "name": "main", "priority": 1, "protocol": "srt", "port": 9002},
        format="json",
    )

    assert response.status_code == 201, response.content
