"""The switcher's decisions, one monitor round at a time, on a real encoder's recorded messages.

The test plays the encoders: every 20 ms each input gets its next message (or none, while it is
meant to be silent), then the monitor runs one round, as its thread would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import cycle
from pathlib import Path

import pytest

from media_engine.config import FailoverSettings, HealthSettings
from media_engine.switcher import Switcher, SwitchEvent
from media_engine.ts import PACKET
from tests.media_engine.replay import Replay

STEP_S = 0.02
GARBAGE = b"\x00" * (7 * PACKET)


class Bench:
    def __init__(self, recording: Path, failover: FailoverSettings, main_health: HealthSettings | None = None) -> None:
        self.sources = [Replay("main", main_health), Replay("backup")]
        self.events: list[SwitchEvent] = []
        self.sent = 0
        self.switcher = Switcher("test", self.sources, failover, forward=self._count, on_event=self.events.append)
        for index, source in enumerate(self.sources):
            source.start(self.switcher.sink(index))
        data = recording.read_bytes()
        messages = [data[o : o + 7 * PACKET] for o in range(0, len(data) - 7 * PACKET, 7 * PACKET)]
        # Each encoder has its own stream, which moves on only when it sends.
        self._streams = [cycle(messages), cycle(messages)]

    def _count(self, data: object, length: int) -> None:
        self.sent += length

    def run(self, seconds: float, main: Callable[[float], str] = lambda t: "sends") -> None:
        """Feed both inputs for ``seconds``; ``main(t)`` says what the main input does at t:
        "sends", "silent" or "garbage"."""
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < seconds:
            doing = main(elapsed)
            if doing == "sends":
                self.sources[0].send(next(self._streams[0]))
            elif doing == "garbage":
                self.sources[0].send(GARBAGE)
            self.sources[1].send(next(self._streams[1]))
            self.switcher.tick()
            time.sleep(STEP_S)

    @property
    def active(self) -> str | None:
        return self.switcher.snapshot()["active"]

    def kinds(self, kind: str) -> list[SwitchEvent]:
        return [event for event in self.events if event.kind == kind]


@pytest.fixture
def bench(sample_ts: Path) -> Callable[..., Bench]:
    def build(failover: FailoverSettings | None = None, **options: HealthSettings) -> Bench:
        return Bench(sample_ts, failover or FailoverSettings(settle_s=0), **options)

    return build


def flapping(t: float) -> str:
    """Up 0.6 s, silent 0.4 s (past the 300 ms timeout), every second."""
    return "silent" if t % 1.0 >= 0.6 else "sends"


def silent(t: float) -> str:
    return "silent"


def test_a_main_input_flapping_every_second_causes_one_switch_per_holdoff_at_most(
    bench: Callable[..., Bench],
) -> None:
    route = bench(FailoverSettings(failback=True, holdoff_s=2.0, settle_s=0))
    route.run(0.3)
    assert route.active == "main"
    route.run(5.0, main=flapping)
    downs = [e for e in route.kinds("input_down") if e.data["input"] == "main"]
    assert len(downs) >= 4, "the main input was judged down at each flap"
    assert len(route.kinds("switched")) == 1, [e.message for e in route.kinds("switched")]
    assert route.active == "backup", "a flapping input never stays healthy for the hold-off"


def test_a_burst_of_garbage_takes_an_input_off_air_and_says_why(bench: Callable[..., Bench]) -> None:
    route = bench()
    route.run(0.3)
    route.run(0.3, main=lambda t: "garbage")
    assert route.active == "backup"
    down = route.kinds("input_down")[0]
    assert "TS sync/continuity errors" in down.data["reason"]
    assert route.sent > 0


def test_an_input_under_its_bitrate_floor_for_a_second_is_down(bench: Callable[..., Bench], sample_ts: Path) -> None:
    route = bench(main_health=HealthSettings(min_bitrate_bps=50_000_000))  # far above the ~1 Mb/s it sends
    route.run(1.6)
    assert route.active == "backup"
    assert "under the floor of 50000 kb/s" in route.switcher.snapshot()["health"]["main"]["reason"]


def test_in_manual_mode_only_the_operator_switches(bench: Callable[..., Bench]) -> None:
    route = bench(FailoverSettings(mode="manual", settle_s=0))
    route.run(0.3)
    route.run(0.6, main=silent)
    assert route.active == "main", "a dead main input stays on air in manual mode"
    assert not route.switcher.snapshot()["health"]["main"]["healthy"]
    route.switcher.pin("backup")
    route.run(0.1, main=silent)  # the main input is down: the switch does not wait for a keyframe
    assert route.active == "backup"
    assert "operator" in route.kinds("switched")[0].message


def test_a_pinned_input_stays_on_air_even_when_it_dies(bench: Callable[..., Bench]) -> None:
    route = bench()
    route.run(0.3)
    route.switcher.pin("main")
    route.run(0.6, main=silent)
    assert route.active == "main"
    route.switcher.pin(None)
    route.run(0.1, main=silent)
    assert route.active == "backup", "released, the route leaves the dead input at once"
    with pytest.raises(ValueError, match="no input 'nope'"):
        route.switcher.pin("nope")


def test_the_monitor_sleeps_until_the_active_input_could_time_out(bench: Callable[..., Bench]) -> None:
    route = bench()
    route.run(0.3)
    last = route.sources[0].last_data_at
    assert last is not None
    # Sending: no need to look before the next 100 ms round.
    assert route.switcher._next_round(last) == pytest.approx(0.1)
    # Silent for 250 ms: the next round lands just past the 300 ms timeout, not a round later.
    assert route.switcher._next_round(last + 0.25) == pytest.approx(0.052, abs=0.001)
    # Deciding a switch: the finest rounds.
    route.switcher.pin("backup")
    route.switcher.tick()
    assert route.switcher._next_round(last) == pytest.approx(0.01)
