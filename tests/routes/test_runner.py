"""The route runner in this process, one route at a time: what it does with what it is given."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from routes.choices import EventKind
from routes.models import Input, Node, Output, Route, RouteEvent, RouteLease, TranscodeProfile
from routes.runner import RouteRunner, RunnerTiming
from routes.runtime import HISTORY_WINDOW_S, RouteRuntime, publish_route_history, route_history, route_state
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


class SnapshotRelay:
    """Stands in for a relay: hands the runner one snapshot per publish, as a test sets them."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.inputs: list[dict[str, Any]] = []
        self.active: str | None = None

    def snapshot(self) -> dict[str, Any]:
        switcher = {"active": self.active, "active_priority": None, "on_slate": False, "switches": 0}
        health = {i["id"]: {"healthy": True, "reason": "", "for_s": 1.0} for i in self.inputs}
        return {
            "switcher": {**switcher, "last_switch": None, "health": health},
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _output(output: Output, behind: bool | None, reason: str = "") -> dict[str, Any]:
    snapshot: dict[str, Any] = {"id": str(output.pk), "name": output.name, "state": "sending", "reason": ""}
    if behind is not None:
        snapshot["transcode"] = {
            "encoder": "libx264 (software)", "fps": 19.5, "speed": 0.78 if behind else 1.0, "frames": 500,
            "dropped_frames": 40 if behind else 0, "duplicated_frames": 0, "decode_errors": 0, "behind": behind,
            "behind_reason": reason,
        }  # fmt: skip
    return snapshot


def test_a_transcoder_falling_behind_and_catching_up_becomes_events() -> None:
    route = enabled_route("news")
    scaled = Output.objects.create(route=route, name="scaled", protocol="udp", host="198.51.100.1", port=5000)
    plain = route.outputs.get(name="play")
    runner = RouteRunner(route.pk, "alpha", threading.Event(), FAST)
    relay = SnapshotRelay()
    runner.relay = relay  # type: ignore[assignment]
    slow = "speed 0.78x for 5 s: the encoder cannot keep up"

    def publish(behind: bool | None) -> RouteRuntime:
        relay.outputs = [_output(scaled, behind, slow if behind else ""), _output(plain, None)]
        return runner._runtime("running", "")

    def kinds() -> list[str]:
        return list(RouteEvent.objects.filter(route=route).order_by("id").values_list("kind", flat=True))

    runtime = publish(False)
    assert kinds() == [], "keeping up from the start is no news"
    assert runtime.outputs[str(scaled.pk)]["stats"]["transcode"]["encoder"] == "libx264 (software)"
    assert "transcode" not in runtime.outputs[str(plain.pk)]["stats"]

    runtime = publish(True)
    assert kinds() == [EventKind.TRANSCODER_BEHIND]
    behind = RouteEvent.objects.get(route=route, kind=EventKind.TRANSCODER_BEHIND)
    assert behind.message == f'output "scaled": transcoder behind realtime: {slow}'
    assert behind.data == {"output": scaled.pk, "reason": slow, "encoder": "libx264 (software)", "speed": 0.78}
    assert runtime.outputs[str(scaled.pk)]["stats"]["transcode"]["behind"] is True

    publish(True)
    assert kinds() == [EventKind.TRANSCODER_BEHIND], "still behind: one event, not one a second"

    publish(False)
    assert kinds() == [EventKind.TRANSCODER_BEHIND, EventKind.TRANSCODER_OK]
    caught_up = RouteEvent.objects.get(route=route, kind=EventKind.TRANSCODER_OK)
    assert caught_up.message == 'output "scaled": transcoder caught up'
    assert caught_up.data["output"] == scaled.pk


def test_a_node_without_the_encoder_an_output_asks_for_does_not_run_it() -> None:
    route = enabled_route("news")
    hd = TranscodeProfile.objects.create(name="hd-qsv", encoder="qsv", video_bitrate_kbps=3000)
    route.outputs.update(profile=hd)
    Node.objects.create(name="alpha", capabilities=["software"])

    why = RouteRunner(route.pk, "alpha", threading.Event(), FAST).run()

    assert why == "failed"
    event = RouteEvent.objects.get(route=route, kind=EventKind.ERROR)
    assert event.message == (
        'could not start: needs the Intel QSV encoder (profile "hd-qsv" on output "play"), which node "alpha" '
        "lacks (it has software (x264/x265))"
    )
    assert route_state(route.pk).state == "failed"
    assert not RouteLease.held().filter(route=route).exists()


def _input(source: Input, bps: float, rtt: float | None) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"id": str(source.pk), "name": source.name, "state": "connected", "reason": ""}
    snapshot["bitrate_1s_bps"] = bps
    if rtt is not None:
        snapshot["srt"] = {"rtt_ms": rtt, "packets_lost_recv": 0}
    return snapshot


def test_each_publication_adds_a_chart_sample_and_a_new_runner_carries_on_with_them() -> None:
    route = enabled_route("news")
    cam = route.inputs.get(name="cam")
    feed = Input.objects.create(route=route, name="feed", priority=2, protocol="udp", port=free_udp_port())
    stale = {"t": time.time() - HISTORY_WINDOW_S - 5, "active": cam.pk, "inputs": {}}
    earlier = {"t": time.time() - 30, "active": cam.pk, "inputs": {str(cam.pk): {"bps": 1.0, "rtt": 2.0}}}
    publish_route_history(route.pk, [stale, earlier])  # left by the runner that ran the route before

    runner = RouteRunner(route.pk, "alpha", threading.Event(), FAST)
    relay = SnapshotRelay()
    runner.relay = relay  # type: ignore[assignment]
    runner._renewed_at = time.monotonic()  # as if it had just renewed its lease
    relay.active = str(cam.pk)
    relay.inputs = [_input(cam, 1_200_000.0, 14.5), _input(feed, 800_000.0, None)]
    runner._publish("running")
    relay.active = str(feed.pk)
    relay.inputs = [_input(cam, 0.0, 15.0), _input(feed, 790_000.0, None)]
    runner._publish("running")

    history = route_history(route.pk)
    assert history[0] == earlier, "the samples from before carry on; those past the window are dropped"
    assert [sample["active"] for sample in history[1:]] == [cam.pk, feed.pk]
    assert history[1]["inputs"] == {
        str(cam.pk): {"bps": 1_200_000.0, "rtt": 14.5},
        str(feed.pk): {"bps": 800_000.0, "rtt": None},
    }
    assert history[2]["inputs"][str(cam.pk)] == {"bps": 0.0, "rtt": 15.0}
    assert earlier["t"] < history[1]["t"] <= history[2]["t"] <= time.time()
    assert route_history(route.pk, since=history[1]["t"]) == history[2:]

    runner._publish("stopped", ttl_s=2)
    runner._renewed_at = 0.0  # lease gone: another node's copy publishes now
    runner._publish("running")
    assert route_history(route.pk) == history, "only a running route's lease holder adds samples"
