"""The URLs the API hands out: where an encoder sends to, and where a player connects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from routes.models import Input, Output, Route


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"protocol": "srt", "port": 9001}, "srt://gw.example.net:9001", id="srt-listener"),
        pytest.param(
            {"protocol": "srt", "port": 9001, "streamid": "#!::r=news/cam 1,m=publish"},
            "srt://gw.example.net:9001?streamid=%23%21%3A%3Ar%3Dnews%2Fcam%201%2Cm%3Dpublish",
            id="srt-listener-streamid-escaped",
        ),
        pytest.param({"protocol": "rtmp", "stream_key": "studio"}, "rtmp://gw.example.net:1935/live", id="rtmp"),
        pytest.param({"protocol": "udp", "port": 5000}, "udp://gw.example.net:5000", id="udp-unicast"),
        pytest.param(
            {"protocol": "udp", "port": 5000, "host": "239.1.1.1"}, "udp://239.1.1.1:5000", id="udp-multicast-group"
        ),
        pytest.param(
            {"protocol": "srt", "mode": "caller", "host": "enc.example.net", "port": 9001}, None, id="srt-caller"
        ),
        pytest.param({"protocol": "hls", "url": "https://cdn.example.net/a.m3u8"}, None, id="hls-pull"),
    ],
)
def test_encoder_url_uses_the_configured_public_host(
    admin_api: APIClient,
    make_input: Callable[..., Input],
    settings: Settings,
    fields: dict[str, Any],
    expected: str | None,
) -> None:
    settings.VAJRACAST_PUBLIC_HOST = "gw.example.net"
    item = make_input(**fields)

    assert admin_api.get(f"/api/v1/inputs/{item.pk}/").json()["encoder_url"] == expected


@pytest.mark.parametrize(
    ("http_host", "expected"),
    [
        pytest.param("studio.example.net:8000", "srt://studio.example.net:9001?streamid=cam1", id="name-with-port"),
        pytest.param("[2001:db8::1]:8000", "srt://[2001:db8::1]:9001?streamid=cam1", id="ipv6"),
    ],
)
def test_encoder_url_falls_back_to_the_host_the_client_used(
    admin_api: APIClient,
    make_input: Callable[..., Input],
    settings: Settings,
    http_host: str,
    expected: str,
) -> None:
    settings.VAJRACAST_PUBLIC_HOST = None
    settings.ALLOWED_HOSTS = ["*"]
    item = make_input(port=9001, streamid="cam1")

    response = admin_api.get(f"/api/v1/inputs/{item.pk}/", HTTP_HOST=http_host)

    assert response.json()["encoder_url"] == expected


def test_route_detail_shows_encoder_urls_of_its_inputs(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input], settings: Settings
) -> None:
    settings.VAJRACAST_PUBLIC_HOST = "gw.example.net"
    make_input(port=9001, streamid="cam1")

    body = admin_api.get(f"/api/v1/routes/{route.pk}/").json()

    assert body["inputs"][0]["encoder_url"] == "srt://gw.example.net:9001?streamid=cam1"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"protocol": "srt", "mode": "listener", "port": 9200}, "srt://gw.example.net:9200", id="listener"),
        pytest.param({"protocol": "srt", "host": "rx.example.net", "port": 9200}, None, id="caller"),
    ],
)
def test_player_url_for_srt_listener_outputs(
    admin_api: APIClient,
    make_output: Callable[..., Output],
    settings: Settings,
    fields: dict[str, Any],
    expected: str | None,
) -> None:
    settings.VAJRACAST_PUBLIC_HOST = "gw.example.net"
    item = make_output(**fields)

    assert admin_api.get(f"/api/v1/outputs/{item.pk}/").json()["player_url"] == expected
