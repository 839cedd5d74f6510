"""Two listeners cannot hold one port, across all routes and across inputs and outputs.

The exceptions the engine demultiplexes: SRT listeners with distinct stream IDs, RTMP inputs with
distinct stream keys, UDP inputs joined to distinct multicast groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.models import Input, Output, Route

SRT_LISTENER = {"protocol": "srt", "mode": "listener", "port": 9001}
RTMP = {"protocol": "rtmp", "port": 1935}
UDP = {"protocol": "udp", "port": 5000}

HOLDER_INPUT = 'is already used by the {proto} listener input "holder" of route "news"'
HOLDER_OUTPUT = 'is already used by the SRT listener output "holder" of route "news"'

# (holder kind, holder fields, newcomer kind, newcomer fields, None when allowed or fragments of the refusal)
CASES: list[Any] = [
    pytest.param(
        "input",
        SRT_LISTENER,
        "input",
        SRT_LISTENER,
        ["Port 9001/udp", HOLDER_INPUT.format(proto="SRT"), "only when each has its own stream ID"],
        id="srt-twice",
    ),
    pytest.param(
        "input",
        {**SRT_LISTENER, "streamid": "cam1"},
        "input",
        {**SRT_LISTENER, "streamid": "cam1"},
        ["own stream ID"],
        id="srt-same-streamid",
    ),
    pytest.param(
        "input",
        {**SRT_LISTENER, "streamid": "cam1"},
        "input",
        SRT_LISTENER,
        ["own stream ID"],
        id="srt-one-streamid-missing",
    ),
    pytest.param(
        "input", {**SRT_LISTENER, "streamid": "cam1"}, "input", {**SRT_LISTENER, "streamid": "cam2"}, None, id="srt-ids"
    ),
    pytest.param(
        "input",
        {**SRT_LISTENER, "streamid": "cam1"},
        "input",
        {"protocol": "srt", "mode": "rendezvous", "host": "10.0.0.9", "port": 9001},
        ["Port 9001/udp", HOLDER_INPUT.format(proto="SRT"), "rendezvous needs a port of its own"],
        id="srt-rendezvous-on-listener-port",
    ),
    pytest.param(
        "input",
        {**RTMP, "stream_key": "studio-a"},
        "input",
        {**RTMP, "stream_key": "studio-a"},
        ["Port 1935/tcp", HOLDER_INPUT.format(proto="RTMP"), "need different stream keys"],
        id="rtmp-same-key",
    ),
    pytest.param(
        "input", {**RTMP, "stream_key": "studio-a"}, "input", {**RTMP, "stream_key": "studio-b"}, None, id="rtmp-keys"
    ),
    pytest.param(
        "input",
        {**UDP, "host": "239.1.1.1"},
        "input",
        {**UDP, "host": "239.1.1.1"},
        [HOLDER_INPUT.format(proto="UDP"), "own multicast group"],
        id="udp-same-group",
    ),
    pytest.param(
        "input", {**UDP, "host": "239.1.1.1"}, "input", {**UDP, "host": "239.1.1.2"}, None, id="udp-distinct-groups"
    ),
    pytest.param("input", UDP, "input", {**UDP, "host": "239.1.1.1"}, ["own multicast group"], id="udp-unicast-group"),
    pytest.param(
        "input",
        UDP,
        "input",
        {**SRT_LISTENER, "port": 5000},
        ["Port 5000/udp", HOLDER_INPUT.format(proto="UDP"), "Choose another port"],
        id="srt-on-udp-port",
    ),
    pytest.param(
        "input",
        {**SRT_LISTENER, "port": 5000},
        "input",
        UDP,
        [HOLDER_INPUT.format(proto="SRT"), "Choose another port"],
        id="udp-on-srt-port",
    ),
    pytest.param(
        "output", SRT_LISTENER, "input", SRT_LISTENER, [HOLDER_OUTPUT, "own stream ID"], id="input-on-output-port"
    ),
    pytest.param(
        "input",
        SRT_LISTENER,
        "output",
        SRT_LISTENER,
        [HOLDER_INPUT.format(proto="SRT")],
        id="output-on-input-port",
    ),
    pytest.param(
        "output",
        {**SRT_LISTENER, "streamid": "play"},
        "input",
        {**SRT_LISTENER, "streamid": "cam1"},
        None,
        id="output-and-input-distinct-ids",
    ),
    pytest.param(
        "input", {**RTMP, "port": 9001, "stream_key": "k"}, "input", SRT_LISTENER, None, id="tcp-and-udp-same-number"
    ),
    pytest.param(
        "input",
        {"protocol": "srt", "mode": "caller", "host": "enc.example.net", "port": 9001},
        "input",
        SRT_LISTENER,
        None,
        id="caller-binds-no-port",
    ),
    pytest.param("output", {**UDP, "host": "198.51.100.10"}, "input", UDP, None, id="udp-output-binds-no-port"),
    pytest.param(
        "input",
        SRT_LISTENER,
        "output",
        {"protocol": "srt", "mode": "caller", "host": "rx.example.net", "port": 9001},
        None,
        id="srt-caller-output",
    ),
]


@pytest.fixture
def make_endpoint(
    make_input: Callable[..., Input], make_output: Callable[..., Output]
) -> Callable[..., Input | Output]:
    def make(kind: str, **fields: Any) -> Input | Output:
        return (make_input if kind == "input" else make_output)(**fields)

    return make


def _post(client: APIClient, kind: str, route: Route, fields: dict[str, Any]) -> Any:
    payload = {"route": route.pk, "name": "newcomer", **fields}
    return client.post(f"/api/v1/{kind}s/", payload, format="json")


@pytest.mark.parametrize("same_route", [False, True], ids=["across-routes", "same-route"])
@pytest.mark.parametrize(("holder_kind", "holder", "kind", "fields", "refusal"), CASES)
def test_listener_port_sharing(
    admin_api: APIClient,
    route: Route,
    make_endpoint: Callable[..., Input | Output],
    holder_kind: str,
    holder: dict[str, Any],
    kind: str,
    fields: dict[str, Any],
    refusal: list[str] | None,
    same_route: bool,
) -> None:
    make_endpoint(holder_kind, name="holder", **holder)
    target = route if same_route else Route.objects.create(name="sport")

    response = _post(admin_api, kind, target, fields)

    if refusal is None:
        assert response.status_code == 201, response.content
    else:
        assert response.status_code == 400, response.content
        message = response.json()["errors"]["port"][0]
        for fragment in refusal:
            assert fragment in message


@pytest.mark.parametrize(
    ("kind", "fields", "change"),
    [
        ("input", {**SRT_LISTENER, "streamid": "cam1"}, {"latency_ms": 400}),
        ("input", {**RTMP, "stream_key": "studio"}, {"name": "studio"}),
        ("input", {**UDP, "host": "239.1.1.1"}, {"timeout_ms": 1000}),
        ("output", SRT_LISTENER, {"latency_ms": 400}),
    ],
    ids=["srt-input", "rtmp-input", "udp-input", "srt-output"],
)
def test_update_keeps_its_own_port(
    admin_api: APIClient,
    route: Route,
    make_endpoint: Callable[..., Input | Output],
    kind: str,
    fields: dict[str, Any],
    change: dict[str, Any],
) -> None:
    item = make_endpoint(kind, name="holder", **fields)
    path = f"/api/v1/{kind}s/{item.pk}/"
    full = {"route": route.pk, "name": "holder", **fields}

    assert admin_api.patch(path, change, format="json").status_code == 200
    assert admin_api.put(path, full, format="json").status_code == 200


def test_moving_onto_a_held_port_is_refused_naming_the_holder(
    admin_api: APIClient, route: Route, make_input: Callable[..., Input]
) -> None:
    make_input(name="holder", **SRT_LISTENER)
    sport = Route.objects.create(name="sport")
    mover = make_input(route=sport, name="mover", protocol="srt", port=9002)

    response = admin_api.patch(f"/api/v1/inputs/{mover.pk}/", {"port": 9001}, format="json")

    assert response.status_code == 400
    assert HOLDER_INPUT.format(proto="SRT") in response.json()["errors"]["port"][0]
    mover.refresh_from_db()
    assert mover.port == 9002
