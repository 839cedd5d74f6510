"""The route runner in this process, one route at a time: what it does with what it is given."""

from __future__ import annotations

import threading

import pytest

from routes.choices import EventKind
from routes.models import Input, Output, Route, RouteEvent, RouteLease
from routes.runner import RouteRunner, RunnerTiming
from routes.runtime import route_state
from tests.peers.media import free_udp_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
FAST = RunnerTiming(lease_ttl_s=2.0, renew_every_s=0.5, poll_every_s=0.05, publish_every_s=0.2, acquire_wait_s=0.5)


def enabled_route(name: str, input_protocol: str = "srt") -> Route:
    route = Route.objects.create(name=name, enabled=True)
    if input_protocol == "rtmp":
        Input.objects.create(route=route, name="studio", priority=1, protocol="rtmp", port=1935, stream_key="k")
    else:
        Input.objects.create(route=route, name="cam", priority=1, protocol="srt", mode="listener", port=free_udp_port())
    Output.objects.create(route=route, name="play", protocol="srt", mode="listener", port=free_udp_port())
    return Route.objects.get(pk=route.pk)


def test_a_protocol_the_engine_lacks_fails_the_route_with_a_clear_event() -> None:
    route = enabled_route("legacy", input_protocol="rtmp")
    why = RouteRunner(route.pk, "test-node", threading.Event(), FAST).run()
    assert why == "failed"
    event = RouteEvent.objects.get(route=route, kind=EventKind.ERROR)
    assert "rtmp inputs are not supported yet" in event.message
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
