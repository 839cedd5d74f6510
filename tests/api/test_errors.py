"""Bad requests get a 4xx with ``{"message": ..., "errors": {field: [...]}}``, never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.models import Input, Output, Route, TranscodeProfile

ROUTE = {"name": "sport"}
SRT_INPUT = {"name": "cam", "protocol": "srt", "port": 9001}


class Raw(bytes):
    """A request body sent as it is, not encoded as JSON."""


def send(client: APIClient, method: str, url: str, body: Any = None) -> Any:
    """JSON-encode here, escaping what the test client's encoder refuses (lone surrogates)."""
    if body is None:
        return getattr(client, method)(url)
    data = bytes(body) if isinstance(body, Raw) else json.dumps(body).encode()
    return getattr(client, method)(url, data, content_type="application/json")


# (method, path with {route}/{input} ids, body, status, field with the error or None for the message, fragment)
BAD_REQUESTS: list[Any] = [
    pytest.param("post", "/api/v1/routes/", Raw(b'{"name": "sport",'), 400, None, "JSON parse error", id="broken-json"),
    pytest.param("post", "/api/v1/routes/", Raw(b'{"name": "\xff"}'), 400, None, "JSON parse error", id="not-utf8"),
    pytest.param("post", "/api/v1/routes/", [ROUTE], 400, "non_field_errors", "Expected a dictionary", id="list-body"),
    pytest.param("post", "/api/v1/routes/", Raw(b"42"), 400, "non_field_errors", "Expected a dictionary", id="number"),
    pytest.param("post", "/api/v1/routes/", {"name": ["sport"]}, 400, "name", "Not a valid string", id="name-list"),
    pytest.param("post", "/api/v1/routes/", {"name": None}, 400, "name", "may not be null", id="name-null"),
    pytest.param("post", "/api/v1/routes/", {}, 400, "name", "This field is required", id="name-missing"),
    pytest.param(
        "post", "/api/v1/routes/", {**ROUTE, "enabled": "maybe"}, 400, "enabled", "valid boolean", id="bool-word"
    ),
    pytest.param(
        "post", "/api/v1/routes/", {**ROUTE, "holdoff_s": "ten"}, 400, "holdoff_s", "valid integer", id="int-word"
    ),
    pytest.param("post", "/api/v1/routes/", {"name": "x" * 100_000}, 400, "name", "at most 100", id="huge-name"),
    pytest.param("post", "/api/v1/routes/", {"name": "a\tb"}, 400, "name", "Control characters", id="tab-in-name"),
    pytest.param("post", "/api/v1/routes/", {"name": "a\x00b"}, 400, "name", "Null characters", id="nul-in-name"),
    pytest.param(
        "post", "/api/v1/routes/", Raw(b'{"name": "\\ud800"}'), 400, "name", "invalid character", id="lone-surrogate"
    ),
    pytest.param(
        "post", "/api/v1/profiles/", {"name": "hd\x00", "video_codec": "copy"}, 400, "name", "Null", id="nul-profile"
    ),
    pytest.param(
        "post",
        "/api/v1/inputs/",
        {**SRT_INPUT, "route": 999999},
        400,
        "route",
        "There is no route with id 999999",
        id="unknown-route",
    ),
    pytest.param(
        "post", "/api/v1/inputs/", {**SRT_INPUT, "route": "news"}, 400, "route", "id as a number", id="route-by-name"
    ),
    pytest.param("post", "/api/v1/inputs/", SRT_INPUT, 400, "route", "This field is required", id="no-route"),
    pytest.param(
        "post", "/api/v1/inputs/", {**SRT_INPUT, "route": "{route}", "port": 1.5}, 400, "port", "integer", id="float"
    ),
    pytest.param(
        "post",
        "/api/v1/inputs/",
        {**SRT_INPUT, "route": "{route}", "port": 10**30},
        400,
        "port",
        "1 to 65535",
        id="huge-port",
    ),
    pytest.param(
        "post",
        "/api/v1/inputs/",
        {**SRT_INPUT, "route": "{route}", "streamid": "cam\n1"},
        400,
        "streamid",
        "Control characters",
        id="newline-in-streamid",
    ),
    pytest.param(
        "post",
        "/api/v1/inputs/",
        {**SRT_INPUT, "route": "{route}", "passphrase": "0123456789\x00"},
        400,
        "passphrase",
        "Null characters",
        id="nul-in-passphrase",
    ),
    pytest.param(
        "post",
        "/api/v1/inputs/",
        {**SRT_INPUT, "route": "{route}", "protocol": "ndi"},
        400,
        "protocol",
        "use one of: srt, rtmp, udp, http, hls, file",
        id="unknown-protocol",
    ),
    pytest.param(
        "post",
        "/api/v1/outputs/",
        {"route": "{route}", "name": "cdn", "protocol": "rtmp", "url": "rtmp://cdn/x", "profile": 999999},
        400,
        "profile",
        "There is no transcode profile with id 999999",
        id="unknown-profile",
    ),
    pytest.param("patch", "/api/v1/inputs/{input}/", {"url": "x" * 5000}, 400, "url", "at most 2048", id="huge-url"),
    pytest.param("get", "/api/v1/routes/abc/", None, 404, None, "Not found", id="non-numeric-id"),
    pytest.param("get", "/api/v1/routes/1.5/status/", None, 404, None, "no API endpoint", id="dotted-id"),
    pytest.param("get", "/api/v1/routs/", None, 404, None, "no API endpoint at /api/v1/routs/", id="unknown-path"),
    pytest.param("post", "/api/v1/routes", ROUTE, 404, None, "end with a slash: /api/v1/routes/", id="missing-slash"),
    pytest.param("post", "/api/v1/routes/abc/start/", None, 404, None, "Not found", id="non-numeric-action-id"),
    pytest.param("get", f"/api/v1/routes/{10**25}/", None, 404, None, "No Route matches", id="huge-id"),
    pytest.param("delete", "/api/v1/inputs/999999/", None, 404, None, "No Input matches", id="unknown-id"),
    pytest.param("get", "/api/v1/events/?kind=exploded", None, 400, "kind", "not one of the available", id="bad-kind"),
    pytest.param("get", "/api/v1/events/?route=abc", None, 400, "route", "valid choice", id="bad-route-filter"),
    pytest.param("get", "/api/v1/events/?since=yesterday", None, 400, "since", "valid date/time", id="bad-since"),
    pytest.param("put", "/api/v1/routes/", ROUTE, 405, None, 'Method "PUT" not allowed', id="put-on-list"),
]


@pytest.fixture
def ids(route: Route, make_input: Callable[..., Input]) -> dict[str, int]:
    return {"route": route.pk, "input": make_input(port=9100).pk}


def _fill(body: Any, ids: dict[str, int]) -> Any:
    if isinstance(body, dict):
        return {key: ids[value[1:-1]] if value in ("{route}", "{input}") else value for key, value in body.items()}
    return body


def assert_error_shape(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "errors"}
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["errors"], dict)
    return body


@pytest.mark.parametrize(("method", "path", "body", "status", "field", "fragment"), BAD_REQUESTS)
def test_bad_request_is_explained(
    admin_api: APIClient,
    ids: dict[str, int],
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
    fragment: str,
) -> None:
    admin_api.raise_request_exception = False
    response = send(admin_api, method, path.format(**ids), _fill(body, ids))

    assert response.status_code == status, response.content
    payload = assert_error_shape(response)
    if field is None:
        assert fragment in payload["message"]
    else:
        assert any(fragment in message for message in payload["errors"][field]), payload
        assert payload["message"].startswith("" if field == "non_field_errors" else f"{field}: ")


def test_form_encoded_body_is_415(admin_api: APIClient) -> None:
    response = admin_api.post("/api/v1/routes/", {"name": "sport"})

    assert response.status_code == 415
    assert "Unsupported media type" in assert_error_shape(response)["message"]


def test_deleting_a_profile_in_use_names_what_uses_it(admin_api: APIClient, make_output: Callable[..., Output]) -> None:
    profile = TranscodeProfile.objects.create(name="720p", video_codec="h264", video_bitrate_kbps=3000)
    make_output(name="cdn-backup", profile=profile)

    response = admin_api.delete(f"/api/v1/profiles/{profile.pk}/")

    assert response.status_code == 409
    assert 'output "news / cdn-backup"' in assert_error_shape(response)["message"]
    assert TranscodeProfile.objects.filter(pk=profile.pk).exists()


ODD_VALUES = [None, True, -1, 0, 10**30, 1.5, "", "x" * 10_000, "\x00", "\x1b[2J", "\udfff", [1], {"a": 1}]

CREATE_PAYLOADS: dict[str, Callable[[int], dict[str, Any]]] = {
    "routes": lambda route: {"name": "sport", "enabled": True, "failover_mode": "manual", "failback": True,
                             "holdoff_s": 5, "input_timeout_ms": 500},
    "inputs": lambda route: {"route": route, "name": "cam", "protocol": "srt", "mode": "listener", "host": "0.0.0.0",
                             "port": 9001, "url": "", "streamid": "cam", "passphrase": "0123456789", "pbkeylen": 32,
                             "latency_ms": 200, "stream_key": "", "priority": 3, "timeout_ms": 500},
    "outputs": lambda route: {"route": route, "name": "out", "protocol": "srt", "mode": "caller",
                              "host": "rx.example.net", "port": 9002, "url": "", "streamid": "x",
                              "passphrase": "0123456789", "pbkeylen": 16, "latency_ms": 200, "stream_key": "",
                              "profile": None, "enabled": True},
    "profiles": lambda route: {"name": "hd", "video_codec": "h264", "encoder": "software", "width": 1920,
                               "height": 1080, "fps": 25, "video_bitrate_kbps": 6000, "gop": 50, "preset": "fast",
                               "audio_codec": "aac", "audio_bitrate_kbps": 128},
}  # fmt: skip


# What makes a second copy of the payload valid next to the first.
SECOND: dict[str, dict[str, Any]] = {
    "routes": {"name": "other"},
    "inputs": {"name": "other", "port": 9003, "priority": 4},
    "outputs": {"name": "other"},
    "profiles": {"name": "other"},
}


@pytest.mark.parametrize("resource", list(CREATE_PAYLOADS))
def test_odd_values_in_any_field_never_cause_a_server_error(admin_api: APIClient, route: Route, resource: str) -> None:
    admin_api.raise_request_exception = False
    collection = f"/api/v1/{resource}/"
    valid = CREATE_PAYLOADS[resource](route.pk)
    created = admin_api.post(collection, valid, format="json")
    assert created.status_code == 201, created.content
    detail = f"{collection}{created.json()['id']}/"

    server_errors = []
    for field in valid:
        for value in ODD_VALUES:
            for method, url, body in (
                ("post", collection, {**valid, **SECOND[resource], field: value}),
                ("patch", detail, {field: value}),
            ):
                response = send(admin_api, method, url, body)
                if response.status_code >= 500:
                    server_errors.append((method, field, value))
                elif response.status_code >= 400:
                    assert_error_shape(response)
                elif method == "post":
                    admin_api.delete(f"{collection}{response.json()['id']}/")

    assert server_errors == []
