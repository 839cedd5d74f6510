"""Failover between a route's inputs as an operator sees it: a real worker, two live encoders, a player.

The main encoder (tsid 1, testsrc2) and the backup (tsid 2, smptebars) both send to one SRT port,
told apart by stream ID; the player pulls the route's SRT listener output. Every PAT in what the
player received names the encoder it came from, so the capture itself shows when the switch
happened and whether the splice kept the continuity counters running.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind, InputProtocol, OutputProtocol
from routes.models import Input, Output, Route, RouteEvent
from tests.orchestration.cluster import Cluster, Operator, events, udp_port_free, wait_for
from tests.peers import ts_check
from tests.peers.media import ffmpeg_live_encoder, ffmpeg_srt_url, free_udp_port, slt_url
from tests.peers.receiver import TimedReceiver
from tests.support.processes import RunningProcess

pytestmark = pytest.mark.django_db(transaction=True)

MAIN_TSID, BACKUP_TSID = 1, 2
# A loaded 2-core CI machine can hold back an encoder for a few hundred milliseconds; a switch in
# these tests must come from what the test did, not from such a stall.
INPUT_TIMEOUT_MS = 1000
# Seen in the status: the timeout, the monitor's tick, the worker's once-a-second publication,
# and slack for a busy machine.
SWITCH_SEEN_S = 15
# Bytes of the live encoders' stream (about 0.9 Mbit/s): well over half a second of it.
MEDIA_BYTES = 60_000


@dataclass
class Setup:
    route: Route
    main: Input
    backup: Input
    operator: Operator
    ingest: int
    play: int
    encoders: dict[int, RunningProcess]  # by tsid
    player: TimedReceiver

    def switch(self, body: dict[str, Any]) -> Any:
        return self.operator.api.post(f"{self.operator.base}/switch/", body, format="json")

    def status(self) -> dict[str, Any]:
        return self.operator.status()

    def wait_status(self, check: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> dict[str, Any]:
        """Poll the API status until ``check`` holds; returns that status. A timeout shows the last one."""
        seen: dict[str, Any] = {}

        def holds() -> bool:
            for process in self.encoders.values():
                if process.popen.returncode is None:
                    process.fail_if_exited(what)
            seen["status"] = self.status()
            return check(seen["status"])

        try:
            wait_for(holds, timeout_s, what, every_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {seen.get('status')}") from None
        return seen["status"]


def by_id(status: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {item["id"]: item for item in status["inputs"]}


def failover_route(name: str, ingest: int, play: int, **fields: Any) -> tuple[Route, Input, Input]:
    """Main (priority 1) and backup (priority 2) SRT listeners sharing ``ingest`` by stream ID, and an
    SRT listener output on ``play``."""
    route = Route.objects.create(name=name, input_timeout_ms=INPUT_TIMEOUT_MS, **fields)
    inputs = []
    for priority, role in ((1, "main"), (2, "backup")):
        source = Input(
            route=route, name=role, priority=priority, protocol=InputProtocol.SRT, mode="listener",
            host="127.0.0.1", port=ingest, streamid=f"{name}/{role}",
        )  # fmt: skip
        source.full_clean()
        source.save()
        inputs.append(source)
    output = Output(
        route=route, name="player", protocol=OutputProtocol.SRT, mode="listener", host="127.0.0.1", port=play
    )
    output.full_clean()
    output.save()
    return route, inputs[0], inputs[1]


def encode(cluster: Cluster, ingest: int, streamid: str, tsid: int) -> RunningProcess:
    url = ffmpeg_srt_url("127.0.0.1", ingest, streamid=streamid)
    pattern = "testsrc2" if tsid == MAIN_TSID else "smptebars"
    process = ffmpeg_live_encoder(url, tsid=tsid, tone_hz=1000 if tsid == MAIN_TSID else 440, pattern=pattern)
    cluster.processes.append(process)  # stopped by PID when the test ends, if still running
    return process


@contextmanager
def main_on_air_backup_standing_by(
    cluster: Cluster, api: APIClient, name: str = "news", **route_fields: Any
) -> Iterator[Setup]:
    """A running route with the main encoder on air, the backup connected and healthy, and a player
    receiving. The main encoder starts first so it opens the route: no switch has happened yet."""
    cluster.worker("alpha")
    ingest, play = free_udp_port(), free_udp_port()
    route, main, backup = failover_route(name, ingest, play, **route_fields)
    operator = Operator(api, route)
    took = operator.start()
    print(f"route running with its listeners bound after {took:.2f}s")
    with TimedReceiver(slt_url("127.0.0.1", play)) as player:
        setup = Setup(route, main, backup, operator, ingest, play, {}, player)
        setup.encoders[MAIN_TSID] = encode(cluster, ingest, main.streamid, MAIN_TSID)
        setup.wait_status(
            lambda s: s["active_input"] == main.pk and by_id(s)[main.pk]["healthy"], 30, "the main input on air"
        )
        setup.encoders[BACKUP_TSID] = encode(cluster, ingest, backup.streamid, BACKUP_TSID)
        ready = setup.wait_status(
            lambda s: all(i["healthy"] for i in s["inputs"]) and s["outputs"][0]["state"] == "connected",
            30,
            "both inputs healthy and the player connected",
        )
        player.wait_bytes(MEDIA_BYTES, 30)
        assert ready["active_input"] == main.pk
        assert (ready["active_priority"], ready["switches"], ready["last_switch"]) == (1, 0, None)
        assert ready["on_slate"] is False
        assert ready["pinned_input"] is None
        print(f"main on air, backup standing by; the player has {player.received} bytes")
        yield setup


def owners(player: TimedReceiver) -> tuple[list[ts_check.Packet], list[int]]:
    """What the player received as packets, and the encoders (by tsid) in the order they were on air."""
    packets = ts_check.parse(player.data, allow_partial_tail=True)
    return packets, [segment.transport_stream_id for segment in ts_check.segments(packets)]


def test_losing_the_main_encoder_switches_to_the_backup_and_the_player_keeps_playing(
    cluster: Cluster, operator_api: APIClient
) -> None:
    with main_on_air_backup_standing_by(cluster, operator_api) as setup:
        main, backup, player = setup.main, setup.backup, setup.player
        started = len(events(setup.route, EventKind.STARTED))

        killed_at = time.monotonic()
        # SIGKILL: the encoder vanishes without closing its SRT connection, as on a power or
        # network loss, so the gateway notices by the silence and not by a goodbye.
        os.kill(setup.encoders[MAIN_TSID].pid, signal.SIGKILL)
        setup.encoders[MAIN_TSID].popen.wait(timeout=10)

        after = setup.wait_status(lambda s: s["active_input"] == backup.pk, SWITCH_SEEN_S, "the backup on air")
        took = time.monotonic() - killed_at
        offset = player.received
        print(f"the status shows the backup on air {took:.2f}s after the main encoder was killed")
        assert (after["active_priority"], after["switches"], after["on_slate"]) == (2, 1, False)
        assert after["pinned_input"] is None
        assert (after["state"], after["node"]) == ("running", "alpha")
        inputs = by_id(after)
        assert inputs[main.pk]["healthy"] is False
        assert inputs[main.pk]["active"] is False
        assert "no data for" in inputs[main.pk]["health_reason"], inputs[main.pk]
        assert inputs[backup.pk]["healthy"] is True
        assert inputs[backup.pk]["active"] is True
        assert inputs[backup.pk]["health_reason"] == ""
        last = after["last_switch"]
        assert (last["from"], last["to"], last["planned"]) == (main.pk, backup.pk, False)
        assert last["reason"].startswith('"main" down: no data for'), last

        # The runner writes the switcher's events to the database at its next poll.
        wait_for(lambda: events(setup.route, EventKind.SWITCHED), 5, "the switched event")
        [switched] = events(setup.route, EventKind.SWITCHED)
        assert (switched.data["from"], switched.data["to"], switched.data["planned"]) == (main.pk, backup.pk, False)
        assert "no data for" in switched.data["reason"]
        assert switched.message.startswith('switched from "main" to "backup": "main" down: no data for')
        down = [event for event in events(setup.route, EventKind.INPUT_DOWN) if event.data.get("input") == main.pk]
        assert len(down) == 1, [event.message for event in down]
        assert "no data for" in down[0].data["reason"]
        assert down[0].time <= switched.time
        assert not [e for e in events(setup.route, EventKind.INPUT_DOWN) if e.data.get("input") == backup.pk]

        # The player never noticed more than the silence before the switch: it was not dropped,
        # and the backup's media keeps coming.
        player.wait_bytes(offset + 2 * MEDIA_BYTES, 15)
        gap = player.largest_gap(since=killed_at, until=time.monotonic())
        print(f"largest silence at the player around the switch: {gap:.2f}s")
        assert gap < INPUT_TIMEOUT_MS / 1000 + 2.0
        assert player.popen is not None
        assert player.popen.poll() is None, player.log()
        assert len(events(setup.route, EventKind.STARTED)) == started, "a failover is not a restart"

        packets, on_air = owners(player)
        assert on_air == [MAIN_TSID, BACKUP_TSID], ts_check.segments(packets)
        splice = ts_check.find_switch(packets, MAIN_TSID, BACKUP_TSID)
        assert packets[-1].index - splice.splice > MEDIA_BYTES // 188, "the backup's stream goes on past the switch"
        assert ts_check.continuity_errors(packets) == []


def test_an_operator_switches_to_the_backup_without_a_restart_and_releases_it(
    cluster: Cluster, operator_api: APIClient
) -> None:
    with main_on_air_backup_standing_by(cluster, operator_api) as setup:
        main, backup, player = setup.main, setup.backup, setup.player
        before = setup.status()
        assert len(events(setup.route, EventKind.STARTED)) == 1

        # A refused switch leaves the running route alone.
        foreign = Input.objects.create(
            route=Route.objects.create(name="sport"), name="cam", priority=1, protocol="srt", mode="caller",
            host="192.0.2.1", port=9000,
        )  # fmt: skip
        refused = setup.switch({"input": foreign.pk})
        assert refused.status_code == 400
        assert refused.json()["message"] == f'input: Route "news" has no input with id {foreign.pk}.'

        asked_at = time.monotonic()
        pinned = setup.switch({"input": backup.pk})
        assert pinned.status_code == 200, pinned.content
        assert pinned.json()["pinned_input"] == backup.pk
        after = setup.wait_status(lambda s: s["active_input"] == backup.pk, SWITCH_SEEN_S, "the pinned backup on air")
        print(f"the status shows the pinned backup on air {time.monotonic() - asked_at:.2f}s after the request")
        assert (after["active_priority"], after["switches"], after["pinned_input"]) == (2, 1, backup.pk)
        last = after["last_switch"]
        assert (last["from"], last["to"], last["planned"]) == (main.pk, backup.pk, True)
        assert last["reason"] == "manual switch by an operator"
        # Both encoders stay healthy: the main one is simply off air.
        assert [(i["id"], i["healthy"], i["active"]) for i in after["inputs"]] == [
            (main.pk, True, False),
            (backup.pk, True, True),
        ]

        # Not a restart: no new "started" event, and neither the encoders nor the player had to
        # reconnect, since the listeners they are connected to never closed.
        assert len(events(setup.route, EventKind.STARTED)) == 1
        assert not events(setup.route, EventKind.STOPPED)
        for side in ("inputs", "outputs"):
            for earlier, now in zip(before[side], after[side], strict=True):
                assert now["state"] == "connected", now
                assert now["stats"]["connects"] == earlier["stats"]["connects"] == 1, (side, now["name"])
                assert now["stats"]["uptime_s"] >= earlier["stats"]["uptime_s"], (side, now["name"])
        assert not udp_port_free(setup.ingest)
        assert not udp_port_free(setup.play)
        wait_for(lambda: events(setup.route, EventKind.SWITCHED), 5, "the switched event")
        [switched] = events(setup.route, EventKind.SWITCHED)
        assert (switched.data["from"], switched.data["to"], switched.data["planned"]) == (main.pk, backup.pk, True)
        assert switched.data["reason"] == "manual switch by an operator"

        # A planned switch waits for the backup's next keyframe: the player hears no silence.
        offset = player.received
        player.wait_bytes(offset + MEDIA_BYTES, 15)
        gap = player.largest_gap(since=asked_at, until=time.monotonic())
        print(f"largest silence at the player around the manual switch: {gap:.2f}s")
        assert gap < 1.0

        # Released: automatic selection again, which puts the best healthy input on air: the main
        # one, at its next keyframe (planned), whether or not failback is on.
        released_at = time.monotonic()
        released = setup.switch({"input": None})
        assert released.status_code == 200, released.content
        assert released.json()["pinned_input"] is None
        back = setup.wait_status(lambda s: s["active_input"] == main.pk, SWITCH_SEEN_S, "the main input back on air")
        print(f"the main input is back on air {time.monotonic() - released_at:.2f}s after the release")
        assert (back["active_priority"], back["switches"], back["pinned_input"]) == (1, 2, None)
        last = back["last_switch"]
        assert (last["from"], last["to"], last["planned"]) == (backup.pk, main.pk, True)
        assert last["reason"] == "manual override released"
        wait_for(lambda: len(events(setup.route, EventKind.SWITCHED)) == 2, 5, "the second switched event")
        assert len(events(setup.route, EventKind.STARTED)) == 1
        assert not events(setup.route, EventKind.INPUT_DOWN), "both encoders stayed healthy throughout"

        player.wait_bytes(player.received + MEDIA_BYTES, 15)
        assert player.largest_gap(since=asked_at, until=time.monotonic()) < 1.0
        packets, on_air = owners(player)
        assert on_air == [MAIN_TSID, BACKUP_TSID, MAIN_TSID], ts_check.segments(packets)
        assert ts_check.continuity_errors(packets) == []


def test_with_failback_a_pin_still_holds_and_a_restarted_main_encoder_comes_back_after_the_hold_off(
    cluster: Cluster, operator_api: APIClient
) -> None:
    holdoff_s = 1
    with main_on_air_backup_standing_by(cluster, operator_api, failback=True, holdoff_s=holdoff_s) as setup:
        main, backup, player = setup.main, setup.backup, setup.player

        assert setup.switch({"input": backup.pk}).status_code == 200
        setup.wait_status(lambda s: s["active_input"] == backup.pk, SWITCH_SEEN_S, "the pinned backup on air")
        # Failback would prefer the main input, healthy for longer than the hold-off: the pin wins.
        pinned_at = time.monotonic()
        while time.monotonic() - pinned_at < holdoff_s + 1.5:
            now = setup.status()
            assert (now["active_input"], now["switches"], now["pinned_input"]) == (backup.pk, 1, backup.pk), now
            time.sleep(0.25)
        assert setup.switch({"input": None}).status_code == 200
        setup.wait_status(lambda s: s["active_input"] == main.pk, SWITCH_SEEN_S, "the main input back on air")

        # The main encoder dies and is started again: the backup takes over at once, and the main
        # input returns once it has stayed healthy for the hold-off.
        os.kill(setup.encoders[MAIN_TSID].pid, signal.SIGKILL)
        setup.encoders[MAIN_TSID].popen.wait(timeout=10)
        setup.wait_status(lambda s: s["active_input"] == backup.pk, SWITCH_SEEN_S, "the backup on air")
        restarted_at = time.monotonic()
        setup.encoders[MAIN_TSID] = encode(cluster, setup.ingest, main.streamid, MAIN_TSID)
        back = setup.wait_status(lambda s: s["active_input"] == main.pk, SWITCH_SEEN_S, "the failback")
        print(f"failback to the restarted main encoder {time.monotonic() - restarted_at:.2f}s after its restart")
        assert (back["active_priority"], back["switches"], back["pinned_input"]) == (1, 4, None)
        last = back["last_switch"]
        assert (last["from"], last["to"], last["planned"]) == (backup.pk, main.pk, True)
        assert last["reason"] == f"failback after {holdoff_s} s healthy"
        wait_for(lambda: len(events(setup.route, EventKind.SWITCHED)) == 4, 5, "four switched events")
        switched = events(setup.route, EventKind.SWITCHED)
        assert [(e.data["to"], e.data["planned"]) for e in switched] == [
            (backup.pk, True),
            (main.pk, True),
            (backup.pk, False),
            (main.pk, True),
        ]
        reasons = [e.data["reason"] for e in switched]
        assert reasons[:2] == ["manual switch by an operator", "manual override released"]
        assert reasons[2].startswith('"main" down: no data for'), reasons
        assert reasons[3] == f"failback after {holdoff_s} s healthy"
        assert [e.data["input"] for e in events(setup.route, EventKind.INPUT_DOWN)] == [main.pk]
        assert len(events(setup.route, EventKind.STARTED)) == 1

        player.wait_bytes(player.received + MEDIA_BYTES, 15)
        assert player.popen is not None
        assert player.popen.poll() is None, player.log()
        packets, on_air = owners(player)
        assert on_air == [MAIN_TSID, BACKUP_TSID, MAIN_TSID, BACKUP_TSID, MAIN_TSID], ts_check.segments(packets)
        assert ts_check.continuity_errors(packets) == []
        assert not RouteEvent.objects.filter(route=setup.route, kind=EventKind.ERROR).exists()
