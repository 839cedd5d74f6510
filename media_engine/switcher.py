"""Choosing which of a route's inputs goes on air, and switching between them cleanly.

Every input is connected and read all the time (hot standby); only the active one's messages
reach the outputs. A monitor thread judges each input's health, waking right after the active input's
timeout could run out (see ``_next_round``):

- the active input going down switches at once to the best healthy input (sudden loss);
- a return to a preferred input (failback after the hold-off, leaving the slate, an operator's
  pin) is planned: it happens on the new input's next random-access point, so the picture never
  starts on a frame the decoder cannot show;
- a pinned input stays on air whatever its health, until released; on release the route goes
  (planned) to the best healthy input, as automatic selection would have it.

The switcher sees inputs only through their common interface, so it does not change when a
protocol is added.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from media_engine.config import FailoverSettings
from media_engine.health import InputHealth
from media_engine.inputs.base import Input, Sink
from media_engine.splice import TsSplicer, continuity_before, random_access_index, unit_start_index
from media_engine.ts import PACKET

log = logging.getLogger(__name__)

TICK_S = 0.01  # the finest round: while a switch is being decided or made
IDLE_ROUND_S = 0.1  # the coarsest: all is well, standby inputs' health only needs to stay fresh
DEADLINE_MARGIN_S = 0.002
CUT_WAIT_S = 0.5  # an armed switch waits this long for the input on air to end a picture
MAX_HELD_MESSAGES = 256  # about 0.3 s at 8 Mb/s: held longer, the switch is made at once


@dataclass(frozen=True)
class SwitchEvent:
    kind: str  # "input_up", "input_down" or "switched"
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Choice:
    index: int
    reason: str
    planned: bool


@dataclass
class _Pending:
    """A planned switch. Armed once the new input has shown a random-access point: from then its
    messages are kept until the input on air reaches a picture boundary, where the switch is made."""

    choice: _Choice
    since: float
    armed_at: float | None = None
    held: list[bytes] = field(default_factory=list)


class Switcher:
    def __init__(
        self,
        name: str,
        inputs: Sequence[Input],
        failover: FailoverSettings,
        forward: Sink,
        on_event: Callable[[SwitchEvent], None] | None = None,
        slate_index: int | None = None,
    ) -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.failover = failover
        self.health = tuple(InputHealth(source, source.config.health) for source in self.inputs)
        self.slate_index = slate_index
        self.switches = 0
        self.last_switch: dict[str, Any] | None = None
        self._forward = forward
        self._on_event = on_event or (lambda event: None)
        self._splicer = TsSplicer()
        self._lock = threading.Lock()
        self._active: int | None = None
        self._pending: _Pending | None = None
        self._pinned: int | None = None
        self._released = False  # an operator's pin was just released: back to the best input
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # an operator's pin or release: decide now
        self._thread: threading.Thread | None = None

    # the packet path

    def sink(self, index: int) -> Sink:
        def deliver(data: ctypes.Array | bytes, length: int) -> None:
            self._on_data(index, data, length)

        return deliver

    def _on_data(self, index: int, data: ctypes.Array | bytes, length: int) -> None:
        if index == self._active:
            with self._lock:
                if index == self._active:
                    self._on_air(index, data, length)
            return
        if self._active is None and self._may_open_with(index):
            # The first message on air is not held for the monitor's next tick: it may carry the
            # stream's parameter sets, which a decoder needs before any picture.
            with self._lock:
                if self._active is None:
                    self._switch(index, "first input with data", planned=False)
                    self._send(data, length)
            return
        pending = self._pending
        if pending is not None and pending.choice.index == index:
            self._on_standby(pending, data, length)

    def _on_air(self, index: int, data: ctypes.Array | bytes, length: int) -> None:
        pending = self._pending
        if pending is not None and pending.armed_at is not None:
            ts = self.inputs[index].stats.ts
            video = ts.video_pids if ts is not None else {}
            cut = unit_start_index(data, length, video) if video else 0
            if cut is not None:
                self._send(*self._splicer.process(data, length, end=cut))
                self._switch(pending.choice.index, pending.choice.reason, planned=True, cut=(data, length, cut))
                return
        self._send(*self._splicer.process(data, length))

    def _on_standby(self, pending: _Pending, data: ctypes.Array | bytes, length: int) -> None:
        start = 0
        if pending.armed_at is None:
            ts = self.inputs[pending.choice.index].stats.ts
            found = random_access_index(data, length, ts.video_pids if ts is not None else {})
            if found is None:
                return
            start = found
        kept = bytes(memoryview(data).cast("B")[start * PACKET : length])
        with self._lock:
            if self._pending is not pending:
                return
            if pending.armed_at is None:
                pending.armed_at = time.monotonic()
            pending.held.append(kept)
            if len(pending.held) >= MAX_HELD_MESSAGES:
                self._switch(pending.choice.index, pending.choice.reason, planned=True)

    def _may_open_with(self, index: int) -> bool:
        if self._pinned is not None:
            return index == self._pinned
        return self.failover.mode == "auto" or index == 0

    def _send(self, data: ctypes.Array | bytes, length: int) -> None:
        if length:
            self._forward(data, length)

    def _switch(
        self, index: int, reason: str, *, planned: bool, cut: tuple[ctypes.Array | bytes, int, int] | None = None
    ) -> None:
        """Put an input on air. Called with the lock held. ``cut``: the old input's message that was
        sent only up to a packet index."""
        previous = self._active
        pending, self._pending = self._pending, None
        self._active = index
        new = self.inputs[index]
        if previous is None:
            log.info("%s: %s on air (%s)", self.name, new.config.name, reason)
            return
        ts, old = new.stats.ts, self.inputs[previous]
        # The old input's thread may have counted a message it then found off air: at worst one
        # counter step is skipped at the first switch, which a decoder takes as one lost packet.
        passed = old.stats.ts.continuity() if old.stats.ts is not None else {}
        if cut is not None:
            passed = continuity_before(passed, *cut)
        psi = self._splicer.switch(
            ts.psi_packets() if ts is not None else [], passed, ts.video_pids if ts is not None else {}
        )
        if psi is not None:
            self._send(*psi)
        if pending is not None and pending.choice.index == index:
            for message in pending.held:
                self._send(*self._splicer.process(message, len(message)))
        self.switches += 1
        self.last_switch = {
            "from": old.config.id,
            "to": new.config.id,
            "reason": reason,
            "planned": planned,
            "at": time.time(),
        }
        message = f'switched from "{old.config.name}" to "{new.config.name}": {reason}'
        log.warning("%s: %s", self.name, message)
        self._on_event(SwitchEvent("switched", message, dict(self.last_switch)))

    # decisions

    def tick(self, now: float | None = None) -> None:
        """One round of the monitor: judge every input, then switch if the choice changed."""
        now = time.monotonic() if now is None else now
        for health in self.health:
            before = health.since
            if health.evaluate(now):
                self._report(health, first=before is None)
        with self._lock:
            # Under the lock: an operator's pin or release cannot slip in between the choice and
            # what it clears.
            choice = self._choose(now)
            if choice is None or choice.index == self._active:
                self._released = False
                self._pending = None
                return
        active = self._active
        if not choice.planned or active is None or not self.health[active].healthy:
            with self._lock:
                self._switch(choice.index, choice.reason, planned=False)
            return
        pending = self._pending
        if pending is None or pending.choice.index != choice.index:
            with self._lock:
                self._pending = _Pending(choice, now)
            return
        late = None
        if pending.armed_at is None and now - pending.since >= self.failover.rap_wait_s:
            late = f"no random-access point within {self.failover.rap_wait_s:g} s"
        elif pending.armed_at is not None and now - pending.armed_at >= CUT_WAIT_S:
            late = f'no picture boundary on "{self.inputs[active].config.name}" within {CUT_WAIT_S:g} s'
        if late is not None:
            with self._lock:
                if self._pending is pending:
                    self._switch(choice.index, f"{choice.reason}; {late}", planned=True)

    def _report(self, health: InputHealth, *, first: bool) -> None:
        if first and not health.healthy:
            return
        source = health.input.config
        data = {"input": source.id, "peer": health.input.stats.peer}
        if health.healthy:
            self._on_event(SwitchEvent("input_up", f'input "{source.name}" up', data))
        else:
            data["reason"] = health.reason
            self._on_event(SwitchEvent("input_down", f'input "{source.name}" down: {health.reason}', data))

    def _choose(self, now: float) -> _Choice | None:
        active = self._active
        if self._pinned is not None:
            return _Choice(self._pinned, "manual switch by an operator", planned=True)
        if self.failover.mode == "manual":
            return _Choice(0, "manual failover: the main input", planned=True) if active is None else None
        healthy = [index for index, health in enumerate(self.health) if health.healthy]
        if not healthy:
            return None
        best = healthy[0]
        if active is None:
            return _Choice(best, "first healthy input", planned=False)
        if not self.health[active].healthy:
            return _Choice(best, f'"{self.inputs[active].config.name}" down: {self.health[active].reason}', False)
        if best >= active:
            return None
        if active == self.slate_index:
            return _Choice(best, "an input is back; leaving the slate", planned=True)
        if self._released:
            return _Choice(best, "manual override released", planned=True)
        if now - self._started_at < self.failover.settle_s:
            return _Choice(best, "the main input connected after the route started", planned=True)
        if self.failover.failback:
            holdoff = self.failover.holdoff_s
            for index in healthy:
                if index >= active:
                    break
                if self.health[index].healthy_for(now) >= holdoff:
                    return _Choice(index, f"failback after {holdoff:g} s healthy", planned=True)
        return None

    # operator and lifecycle

    def pin(self, input_id: str | None) -> None:
        """Keep this input on air, whatever its health, until released with None."""
        index = None if input_id is None else self._index_of(input_id)
        with self._lock:
            if index is None:
                self._released = self._pinned is not None
            self._pinned = index
        self._wake.set()

    def _index_of(self, input_id: str) -> int:
        for index, source in enumerate(self.inputs):
            if source.config.id == input_id and index != self.slate_index:
                return index
        raise ValueError(f"{self.name}: no input {input_id!r} to switch to")

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{self.name} switcher")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                # The inputs and outputs keep running; the next tick tries again.
                log.exception("%s: switcher tick failed", self.name)
            self._wake.wait(self._next_round(time.monotonic()))
            self._wake.clear()

    def _next_round(self, now: float) -> float:
        """How long the monitor may sleep. While the input on air is sending, only the moment its
        timeout would run out matters: the round lands right after it, so a loss is seen as soon
        as it counts, without waking a hundred times a second for nothing."""
        active = self._active
        if active is None or self._pending is not None or now - self._started_at < self.failover.settle_s:
            return TICK_S
        health = self.health[active]
        last = health.input.last_data_at
        if not health.healthy or last is None:
            return TICK_S
        deadline = last + health.settings.timeout_ms / 1000 + DEADLINE_MARGIN_S
        return min(max(deadline - now, TICK_S), IDLE_ROUND_S)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def active(self) -> Input | None:
        active = self._active
        return None if active is None else self.inputs[active]

    def snapshot(self) -> dict[str, Any]:
        active, pinned, pending = self._active, self._pinned, self._pending
        now = time.monotonic()
        return {
            "active": None if active is None else self.inputs[active].config.id,
            "active_priority": None if active is None else active + 1,
            "on_slate": active is not None and active == self.slate_index,
            "pinned": None if pinned is None else self.inputs[pinned].config.id,
            "pending": None if pending is None else self.inputs[pending.choice.index].config.id,
            "switches": self.switches,
            "last_switch": self.last_switch,
            "health": {
                health.input.config.id: {
                    "healthy": health.healthy,
                    "reason": health.reason,
                    "for_s": round(now - health.since, 1) if health.since is not None else 0.0,
                }
                for health in self.health
            },
        }
