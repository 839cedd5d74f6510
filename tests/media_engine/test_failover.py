"""Failover between live encoders, as a player downstream sees it.

Two ffmpeg encoders send different pictures (testsrc2 and smptebars) and name themselves in their
PAT (transport_stream_id 1 and 2). A real srt-live-transmit reads the relay's output; the capture is
checked by an independent TS parser and decoded by ffmpeg. How fast a switch is gets measured by
bench/failover.py; here the bounds only say that the switch happened and nothing broke.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig, FailoverSettings
from media_engine.relay import Relay
from media_engine.switcher import SwitchEvent
from tests.media_engine.conftest import srt_endpoint
from tests.peers import ts_check
from tests.peers.media import (
    BARS_LUMA,
    decode_problems,
    ffmpeg_live_encoder,
    ffmpeg_srt_url,
    free_udp_port,
    left_edge_luma,
    slt_url,
    wait_until,
)
from tests.peers.receiver import TimedReceiver
from tests.support.processes import RunningProcess

MAIN, BACKUP = 10, 20  # the encoders' transport_stream_id (the slate's is 1)
SLATE = 1
# Far above the 300 ms timeout plus a switch: only a broken or missing switch exceeds it, not a
# slow machine. bench/failover.py measures the real figure.
GAP_BOUND_S = 1.5


class Chain:
    """Two encoders into one relay (two stream IDs on one port), one player on its output."""

    def __init__(
        self,
        relays: Callable[..., Relay],
        processes: list[RunningProcess],
        tmp_path: Path,
        failover: FailoverSettings | None = None,
        slate: EndpointConfig | None = None,
    ) -> None:
        self.processes = processes
        self.ingest, play = free_udp_port(), free_udp_port()
        self.events: list[SwitchEvent] = []
        self.relay = relays(
            (
                srt_endpoint("main", mode="listener", port=self.ingest, streamid="main"),
                srt_endpoint("backup", mode="listener", port=self.ingest, streamid="backup"),
            ),
            srt_endpoint("player", mode="listener", port=play),
            failover=failover,
            slate=slate,
            on_event=self.events.append,
        )
        self.capture = tmp_path / "output.ts"
        self.player = TimedReceiver(slt_url("127.0.0.1", play), file=self.capture).start()
        self.encoders: dict[str, RunningProcess] = {}

    def encode(self, name: str) -> RunningProcess:
        tsid, pattern, tone = (MAIN, "testsrc2", 1000) if name == "main" else (BACKUP, "smptebars", 440)
        url = ffmpeg_srt_url("127.0.0.1", self.ingest, streamid=name)
        encoder = ffmpeg_live_encoder(url, tsid=tsid, tone_hz=tone, pattern=pattern)
        self.processes.append(encoder)
        self.encoders[name] = encoder
        return encoder

    def kill(self, name: str) -> float:
        encoder = self.encoders.pop(name)
        os.kill(encoder.pid, signal.SIGKILL)
        encoder.popen.wait(timeout=10)
        return time.monotonic()

    @property
    def state(self) -> dict:
        return self.relay.switcher.snapshot()

    def wait_on_air(self, name: str, timeout_s: float = 20) -> None:
        wait_until(lambda: self.state["active"] == name, timeout_s, f"{name} on air")

    def wait_healthy(self, *names: str, timeout_s: float = 20) -> None:
        wait_until(lambda: all(self.state["health"][n]["healthy"] for n in names), timeout_s, f"{names} healthy")

    def finish(self) -> list[ts_check.Packet]:
        self.player.stop()
        return ts_check.parse(self.player.data, allow_partial_tail=True)


@pytest.fixture
def chain(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path
) -> Iterator[Callable[..., Chain]]:
    built: list[Chain] = []

    def build(**options: object) -> Chain:
        built.append(Chain(relays, processes, tmp_path, **options))  # type: ignore[arg-type]
        return built[-1]

    yield build
    for route in built:
        if route.player.stopped_at is None:
            route.player.stop()


def assert_clean_splice(packets: list[ts_check.Packet], switch: ts_check.Switch) -> None:
    assert ts_check.continuity_errors(packets) == [], "continuity counters run on across the switch"
    pat, pmt = ts_check.first_psi_after(packets, switch.splice)
    assert pat - switch.splice <= 1, "the new input's PAT is the first thing after the switch"
    assert pmt - pat <= 2, "and its PMT right after"
    assert ts_check.first_pcr_after(packets, switch.splice).discontinuity, "the new time base is flagged"


def test_killing_the_main_encoder_puts_the_backup_on_air_without_breaking_the_stream(
    chain: Callable[..., Chain],
) -> None:
    route = chain()
    route.encode("main")
    route.wait_on_air("main")
    route.encode("backup")
    route.wait_healthy("main", "backup")
    route.player.wait_bytes(300_000, timeout=30)

    killed_at = route.kill("main")
    wait_until(lambda: route.state["active"] == "backup", 10, "the backup on air")
    switched = route.state["last_switch"]
    assert "no data for" in switched["reason"]
    assert not switched["planned"]
    wait_until(lambda: not route.state["health"]["main"]["healthy"], 5, "the main input judged down")
    after = route.player.received
    route.player.wait_bytes(after + 200_000, timeout=20)
    assert route.player.popen.poll() is None, "the player keeps running"
    packets = route.finish()

    assert route.player.largest_gap(since=killed_at - 0.5, until=killed_at + 2) < GAP_BOUND_S
    switch = ts_check.find_switch(packets, MAIN, BACKUP)
    assert_clean_splice(packets, switch)
    assert [s.transport_stream_id for s in ts_check.segments(packets)] == [MAIN, BACKUP]
    kinds = [event.kind for event in route.events]
    assert "input_down" in kinds
    assert kinds.count("switched") == 1
    down = next(e for e in route.events if e.kind == "input_down")
    assert down.data["input"] == "main"
    assert "no data" in down.data["reason"]

    # Decoders follow: the backup's pictures from its next keyframe on (1 s GOP), to the end. The
    # main's last picture may have been cut short by the kill: that one may not decode.
    assert len(decode_problems(route.capture, switched=True)) <= 5
    pictures = ["bars" if luma > BARS_LUMA else "main" for luma in left_edge_luma(route.capture)]
    first_bars = pictures.index("bars")
    assert pictures[:first_bars].count("main") >= 25
    assert set(pictures[first_bars:]) == {"bars"}


@pytest.mark.parametrize("failback", [True, False], ids=["failback", "no-failback"])
def test_a_returning_main_input_is_taken_back_only_with_failback_and_after_the_holdoff(
    chain: Callable[..., Chain], failback: bool
) -> None:
    holdoff = 3.0
    route = chain(failover=FailoverSettings(failback=failback, holdoff_s=holdoff, settle_s=0))
    route.encode("main")
    route.wait_on_air("main")
    route.encode("backup")
    route.wait_healthy("main", "backup")
    route.kill("main")
    route.wait_on_air("backup")

    route.encode("main")
    route.wait_healthy("main")
    healthy_again = time.monotonic()
    if not failback:
        time.sleep(holdoff + 3)
        assert route.state["active"] == "backup", "without failback the route stays on the backup"
        assert route.state["switches"] == 1
        return
    route.wait_on_air("main", timeout_s=holdoff + 10)
    took = time.monotonic() - healthy_again
    assert took >= holdoff - 0.2, f"failed back after {took:.1f}s, before the {holdoff}s hold-off"
    switched = route.state["last_switch"]
    assert switched["planned"]
    assert "failback" in switched["reason"]
    route.player.wait_bytes(route.player.received + 200_000, timeout=20)
    packets = route.finish()
    assert [s.transport_stream_id for s in ts_check.segments(packets)] == [MAIN, BACKUP, MAIN]
    assert_clean_splice(packets, ts_check.find_switch(packets, BACKUP, MAIN))


def test_an_operator_switch_lands_on_a_keyframe_and_decodes_without_an_error(chain: Callable[..., Chain]) -> None:
    route = chain()
    route.encode("main")
    route.wait_on_air("main")
    route.encode("backup")
    route.wait_healthy("main", "backup")
    route.player.wait_bytes(200_000, timeout=30)

    route.relay.pin("backup")
    route.wait_on_air("backup", timeout_s=10)
    assert route.state["pinned"] == "backup"
    assert route.state["last_switch"]["planned"]
    time.sleep(1.5)
    route.relay.pin(None)
    route.wait_on_air("main", timeout_s=10)  # released: automatic selection takes the main again
    route.player.wait_bytes(route.player.received + 150_000, timeout=20)
    packets = route.finish()

    assert [s.transport_stream_id for s in ts_check.segments(packets)] == [MAIN, BACKUP, MAIN]
    assert_clean_splice(packets, ts_check.find_switch(packets, MAIN, BACKUP))
    assert_clean_splice(packets, ts_check.find_switch(packets, BACKUP, MAIN))
    # Both switches waited for the new input's keyframe and ended the old one's last picture:
    # a decoder shows every picture without a single complaint.
    assert decode_problems(route.capture, switched=True) == []
    pictures = ["bars" if luma > BARS_LUMA else "main" for luma in left_edge_luma(route.capture)]
    runs = [p for i, p in enumerate(pictures) if i == 0 or pictures[i - 1] != p]
    assert runs == ["main", "bars", "main"]


def test_with_every_input_down_the_slate_keeps_the_output_going(chain: Callable[..., Chain]) -> None:
    slate = EndpointConfig(id="slate", name="slate", protocol="slate", options={"width": "320", "height": "240"})
    route = chain(slate=slate)
    route.encode("main")
    route.wait_on_air("main")
    route.encode("backup")
    route.wait_healthy("main", "backup")
    route.player.wait_bytes(200_000, timeout=30)

    route.kill("backup")
    wait_until(lambda: not route.state["health"]["backup"]["healthy"], 10, "the backup judged down")
    killed_at = route.kill("main")
    wait_until(lambda: route.state["on_slate"], 10, "the slate on air")
    assert route.state["active_priority"] == 3, "one past the last input"
    time.sleep(2)
    assert route.player.largest_gap(since=killed_at - 0.5, until=time.monotonic()) < GAP_BOUND_S

    route.encode("main")
    route.wait_on_air("main", timeout_s=20)
    assert "leaving the slate" in route.state["last_switch"]["reason"]
    route.player.wait_bytes(route.player.received + 100_000, timeout=20)
    packets = route.finish()
    # Before the first encoder connected, the route carried the slate too.
    segments = ts_check.segments(packets)
    assert [s.transport_stream_id for s in segments] == [SLATE, MAIN, SLATE, MAIN]
    assert ts_check.continuity_errors(packets) == []
    # From the main encoder's first appearance (the player joined the slate mid-GOP before that):
    # only the sudden switch to the slate may cost pictures until the slate's next keyframe.
    tail = route.capture.with_name("from-main.ts")
    tail.write_bytes(route.player.data[packets[segments[1].first].offset :])
    assert len(decode_problems(tail, switched=True)) < 50


def test_a_chain_can_mix_protocols_srt_main_and_udp_backup(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path
) -> None:
    srt_port, udp_port, play = free_udp_port(), free_udp_port(), free_udp_port()
    relay = relays(
        (
            srt_endpoint("main", mode="listener", port=srt_port),
            EndpointConfig(id="backup", name="backup", protocol="udp", port=udp_port),
        ),
        srt_endpoint("player", mode="listener", port=play),
    )
    player = TimedReceiver(slt_url("127.0.0.1", play)).start()
    try:
        main = ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", srt_port), tsid=MAIN, tone_hz=1000)
        processes.append(main)
        wait_until(lambda: relay.switcher.snapshot()["active"] == "main", 20, "the SRT main on air")
        backup_url = f"udp://127.0.0.1:{udp_port}?pkt_size=1316"
        processes.append(ffmpeg_live_encoder(backup_url, tsid=BACKUP, tone_hz=440, pattern="smptebars"))
        wait_until(lambda: relay.switcher.snapshot()["health"]["backup"]["healthy"], 20, "the UDP backup healthy")
        os.kill(main.pid, signal.SIGKILL)
        wait_until(lambda: relay.switcher.snapshot()["active"] == "backup", 10, "the UDP backup on air")
        player.wait_bytes(player.received + 150_000, timeout=20)
    finally:
        player.stop()
    packets = ts_check.parse(player.data, allow_partial_tail=True)
    assert [s.transport_stream_id for s in ts_check.segments(packets)] == [MAIN, BACKUP]
    assert ts_check.continuity_errors(packets) == []
