"""SRT passphrases and RTMP stream keys are write-only: never in a response, an admin page or a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from routes.models import Input, Output, Route
from routes.runtime import RouteRuntime, publish_route_state

INPUT_PASSPHRASE = "input-passphrase-5f1c"
STREAM_KEY = "stream-key-9a7e"
OUTPUT_PASSPHRASE = "output-passphrase-3d2b"
SECRETS = (INPUT_PASSPHRASE, STREAM_KEY, OUTPUT_PASSPHRASE)


def _keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from _keys(item)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def endpoints(admin_api: APIClient, route: Route) -> dict[str, int]:
    """An SRT input with a passphrase, an RTMP input with a stream key, an SRT output with a passphrase."""
    created = {
        "srt_input": admin_api.post(
            "/api/v1/inputs/",
            {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001, "passphrase": INPUT_PASSPHRASE},
            format="json",
        ),
        "rtmp_input": admin_api.post(
            "/api/v1/inputs/",
            {"route": route.pk, "name": "studio", "protocol": "rtmp", "stream_key": STREAM_KEY},
            format="json",
        ),
        "srt_output": admin_api.post(
            "/api/v1/outputs/",
            {
                "route": route.pk,
                "name": "contribution",
                "protocol": "srt",
                "host": "rx.example.net",
                "port": 9100,
                "passphrase": OUTPUT_PASSPHRASE,
            },
            format="json",
        ),
    }
    for response in created.values():
        assert response.status_code == 201, response.content
        assert_no_secret(response.content.decode())
    return {name: response.json()["id"] for name, response in created.items()}


def test_no_response_shows_a_secret(admin_api: APIClient, route: Route, endpoints: dict[str, int]) -> None:
    publish_route_state(
        route.pk,
        RouteRuntime(state="running", active_input=endpoints["srt_input"], inputs={str(endpoints["srt_input"]): {}}),
    )
    srt_input = f"/api/v1/inputs/{endpoints['srt_input']}/"
    responses = [
        admin_api.get("/api/v1/inputs/"),
        admin_api.get(srt_input),
        admin_api.get(f"/api/v1/inputs/{endpoints['rtmp_input']}/"),
        admin_api.get("/api/v1/outputs/"),
        admin_api.get(f"/api/v1/outputs/{endpoints['srt_output']}/"),
        admin_api.get("/api/v1/routes/"),
        admin_api.get(f"/api/v1/routes/{route.pk}/"),
        admin_api.get(f"/api/v1/routes/{route.pk}/status/"),
        admin_api.post(f"/api/v1/routes/{route.pk}/switch/", {"input": endpoints["srt_input"]}, format="json"),
        admin_api.patch(srt_input, {"latency_ms": 300}, format="json"),
        admin_api.put(srt_input, {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001}, format="json"),
    ]

    for response in responses:
        assert response.status_code == 200, response.content
        assert_no_secret(response.content.decode())
        assert not {"passphrase", "stream_key"} & set(_keys(response.json()))
    detail = admin_api.get(srt_input).json()
    assert (detail["has_passphrase"], detail["has_stream_key"]) == (True, False)
    rtmp = admin_api.get(f"/api/v1/inputs/{endpoints['rtmp_input']}/").json()
    assert (rtmp["has_passphrase"], rtmp["has_stream_key"]) == (False, True)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("inputs/{srt_input}", {"passphrase": INPUT_PASSPHRASE, "latency_ms": 5}, id="bad-latency"),
        pytest.param("inputs/{srt_input}", {"passphrase": INPUT_PASSPHRASE + "x" * 70}, id="passphrase-too-long"),
        pytest.param("inputs/{rtmp_input}", {"stream_key": STREAM_KEY + "\x07"}, id="stream-key-control-char"),
        pytest.param("inputs/{rtmp_input}", {"passphrase": OUTPUT_PASSPHRASE}, id="passphrase-on-rtmp"),
        pytest.param("outputs/{srt_output}", {"stream_key": STREAM_KEY}, id="stream-key-on-srt"),
    ],
)
def test_error_responses_do_not_echo_secrets(
    admin_api: APIClient, endpoints: dict[str, int], path: str, body: dict[str, Any]
) -> None:
    response = admin_api.patch(f"/api/v1/{path.format(**endpoints)}/", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]
    assert_no_secret(response.content.decode())


@pytest.mark.parametrize(
    ("resource", "key", "field", "secret"),
    [
        ("inputs", "srt_input", "passphrase", INPUT_PASSPHRASE),
        ("inputs", "rtmp_input", "stream_key", STREAM_KEY),
        ("outputs", "srt_output", "passphrase", OUTPUT_PASSPHRASE),
    ],
)
def test_updates_that_leave_a_secret_out_keep_it(
    admin_api: APIClient, endpoints: dict[str, int], resource: str, key: str, field: str, secret: str
) -> None:
    path = f"/api/v1/{resource}/{endpoints[key]}/"
    model = Input if resource == "inputs" else Output
    full = {k: v for k, v in admin_api.get(path).json().items() if k not in ("id", "encoder_url", "player_url")}

    assert admin_api.patch(path, {"latency_ms": 500}, format="json").status_code == 200
    assert admin_api.put(path, full, format="json").status_code == 200

    assert getattr(model.objects.get(pk=endpoints[key]), field) == secret


@pytest.mark.parametrize(
    ("resource", "key", "field", "flag"),
    [
        ("inputs", "srt_input", "passphrase", "has_passphrase"),
        ("outputs", "srt_output", "passphrase", "has_passphrase"),
    ],
)
def test_empty_string_clears_a_secret(
    admin_api: APIClient, endpoints: dict[str, int], resource: str, key: str, field: str, flag: str
) -> None:
    path = f"/api/v1/{resource}/{endpoints[key]}/"

    response = admin_api.patch(path, {field: ""}, format="json")

    assert response.status_code == 200
    assert response.json()[flag] is False
    model = Input if resource == "inputs" else Output
    assert getattr(model.objects.get(pk=endpoints[key]), field) == ""


def test_rtmp_stream_key_can_be_replaced(admin_api: APIClient, endpoints: dict[str, int]) -> None:
    path = f"/api/v1/inputs/{endpoints['rtmp_input']}/"

    assert admin_api.patch(path, {"stream_key": "replacement-key"}, format="json").status_code == 200

    assert Input.objects.get(pk=endpoints["rtmp_input"]).stream_key == "replacement-key"


@pytest.fixture
def admin_site(db: None, django_user_model: type[AbstractUser]) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "unused"))
    return client


def test_admin_pages_do_not_show_secrets(admin_site: Client, route: Route, endpoints: dict[str, int]) -> None:
    pages = {
        f"/admin/routes/route/{route.pk}/change/": ("cam", "studio", "contribution"),
        f"/admin/routes/input/{endpoints['srt_input']}/change/": ("cam",),
        f"/admin/routes/input/{endpoints['rtmp_input']}/change/": ("studio",),
        f"/admin/routes/output/{endpoints['srt_output']}/change/": ("contribution",),
    }
    for url, names in pages.items():
        response = admin_site.get(url)
        html = response.content.decode()

        assert response.status_code == 200
        assert all(f'value="{name}"' in html for name in names), f"{url} does not show its endpoints"
        assert 'type="password"' in html
        assert_no_secret(html)


def _admin_input_form(route: Route, **fields: Any) -> dict[str, Any]:
    return {
        "route": route.pk,
        "name": "cam-admin",
        "priority": 9,
        "protocol": "srt",
        "mode": "listener",
        "host": "",
        "port": 9009,
        "url": "",
        "streamid": "",
        "passphrase": "",
        "pbkeylen": 16,
        "latency_ms": 120,
        "stream_key": "",
        "timeout_ms": "",
        **fields,
    }


def test_admin_form_with_errors_does_not_echo_the_secret(admin_site: Client, route: Route) -> None:
    response = admin_site.post(
        "/admin/routes/input/add/", _admin_input_form(route, passphrase=INPUT_PASSPHRASE, latency_ms=1)
    )

    assert response.status_code == 200
    assert "SRT latency must be at least 20 ms" in response.content.decode()
    assert_no_secret(response.content.decode())


def test_no_log_line_shows_a_secret(
    caplog: pytest.LogCaptureFixture, admin_api: APIClient, admin_site: Client, route: Route
) -> None:
    caplog.set_level(logging.DEBUG)

    _ = admin_api.post(
        "/api/v1/inputs/",
        {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001, "passphrase": INPUT_PASSPHRASE},
        format="json",
    )
    srt = Input.objects.get(name="cam")
    admin_api.patch(f"/api/v1/inputs/{srt.pk}/", {"passphrase": OUTPUT_PASSPHRASE, "latency_ms": 1}, format="json")
    admin_api.patch(f"/api/v1/inputs/{srt.pk}/", {"passphrase": OUTPUT_PASSPHRASE}, format="json")
    admin_api.post(
        "/api/v1/inputs/",
        {"route": route.pk, "name": "studio", "protocol": "rtmp", "stream_key": STREAM_KEY + "\x07"},
        format="json",
    )
    added = admin_site.post(
        "/admin/routes/input/add/",
        _admin_input_form(route, name="studio", protocol="rtmp", mode="", port="", stream_key=STREAM_KEY),
    )
    rtmp = Input.objects.get(name="studio")
    changed = admin_site.post(
        f"/admin/routes/input/{srt.pk}/change/",
        _admin_input_form(route, name="cam", priority=srt.priority, port=9001, passphrase=INPUT_PASSPHRASE),
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    assert (rtmp.stream_key, Input.objects.get(pk=srt.pk).passphrase) == (STREAM_KEY, INPUT_PASSPHRASE)
    assert caplog.records, "the failed requests above are logged, so logging was captured"
    for record in caplog.records:
        assert_no_secret(record.getMessage())
    assert_no_secret(caplog.text)


def test_secrets_are_kept_exactly_as_typed(admin_api: APIClient, route: Route) -> None:
    """Encoders send the passphrase byte for byte; trimming a space would break the handshake."""
    spaced = "  spaced passphrase  "
    response = admin_api.post(
        "/api/v1/inputs/",
        {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001, "passphrase": spaced},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Input.objects.get(pk=response.json()["id"]).passphrase == spaced
