"""The route runner in this process, one route at a time: what it does with what it is given."""

from __future__ import annotations

import socket
import threading

import pytest

from routes.choices import EventKind
from routes.models import Input, Output, Route, RouteEvent, RouteLease
from routes.runner import RouteRunner, RunnerTiming
from routes.runtime import route_state
from tests.peers.media import free_udp_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
FAST = RunnerTiming(lease_ttl_s=2.0, renew_every_s=0.5, poll_every_s=0.05, publish_every_s=0.2, acquire_wait_s=0.5)


def enabled_route(name: str, input_port: int | None = None) -> Route:
    route = Route.objects.create(name=name, enabled=True)
    if input_port is not None:
        Input.objects.create(route=route, name="feed", priority=1, protocol="udp", port=input_port)
    else:
        Input.objects.create(route=route, name="cam", priority=1, protocol="srt", mode="listener", port=free_udp_port())
    Output.objects.create(route=route, name="play", protocol="srt", mode="listener", port=free_udp_port())
    return Route.objects.get(pk=route.pk)


def test_a_route_that_cannot_start_fails_with_a_clear_event() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("0.0.0.0", 0))  # another program holds the route's UDP port
        port = squatter.getsockname()[1]
        route = enabled_route("legacy", input_port=port)
        why = RouteRunner(route.pk, "test-node", threading.Event(), FAST).run()
    assert why == "failed"
    event = RouteEvent.objects.get(route=route, kind=EventKind.ERROR)
    assert f"cannot receive on udp *:{port}" in event.message
    assert "Address already in use" in event.message
    assert route_state(route.pk).state == "failed"
    assert not RouteLease.held().filter(route=route).exists(), "a failed route releases its lease"


def test_a_second_runner_for_the_same_route_gives_up() -> None:
    route = enabled_route("news")
    stop = threading.Event()
    first = RouteRunner(route.pk, "alpha", stop, FAST)
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        wait_until(lambda: RouteLease.held().filter(route=route, owner=first.owner).exists(), 10, "the first lease")
        assert RouteRunner(route.pk, "bravo", threading.Event(), FAST).run() == "already running elsewhere"
        assert RouteLease.objects.get(route=route).owner == first.owner
    finally:
        stop.set()
        thread.join(timeout=10)
    assert [e.kind for e in RouteEvent.objects.filter(route=route).order_by("time")] == ["started", "stopped"]


def test_disabling_the_route_stops_the_runner_and_frees_the_lease() -> None:
    route = enabled_route("news")
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(RouteRunner(route.pk, "alpha", threading.Event(), FAST).run())
    )
    thread.start()
    try:
        wait_until(lambda: route_state(route.pk).state == "running", 10, "the route to run")
        Route.objects.filter(pk=route.pk).update(enabled=False)
        thread.join(timeout=10)
    finally:
        Route.objects.filter(pk=route.pk).update(enabled=False)
        thread.join(timeout=10)
    assert result == ["stopped"]
    assert not RouteLease.held().filter(route=route).exists()
