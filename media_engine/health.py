"""Whether an input is fit to be on air, judged continuously from what it delivers.

An input is down when it is not connected, has sent nothing for its timeout, has sent a burst of
TS sync or continuity errors in the last second, or has run under its bitrate floor for a whole
second. Every judgement is made by ``evaluate`` from counters the packet path already keeps, so
the check can run every few milliseconds without touching the packets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from media_engine.config import HealthSettings
from media_engine.inputs.base import Input

WINDOW_S = 1.0


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


class InputHealth:
    """The health of one input over time. ``evaluate`` is called from one thread only."""

    def __init__(self, source: Input, settings: HealthSettings) -> None:
        self.input = source
        self.settings = settings
        self.healthy = False
        self.reason = "not started"
        self.since: float | None = None  # when the current verdict began
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, bytes, TS errors)

    def evaluate(self, now: float) -> bool:
        """Judge the input now; returns whether the verdict changed."""
        verdict = self._judge(now)
        changed = verdict.healthy != self.healthy or self.since is None
        if changed:
            self.since = now
        self.healthy, self.reason = verdict.healthy, verdict.reason
        return changed

    def healthy_for(self, now: float) -> float:
        return now - self.since if self.healthy and self.since is not None else 0.0

    def _judge(self, now: float) -> Verdict:
        source, settings = self.input, self.settings
        stats = source.stats
        counters = stats.ts.counters if stats.ts is not None else None
        errors = counters.sync_errors + counters.cc_errors if counters is not None else 0
        samples = self._samples
        samples.append((now, stats.meter.bytes, errors))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW_S:
            samples.popleft()
        if not source.link_up():
            return Verdict(False, f"not connected ({stats.reason or stats.state})")
        last = source.last_data_at
        if last is None:
            return Verdict(False, "connected, no data yet")
        silent_ms = (now - last) * 1000
        if silent_ms > settings.timeout_ms:
            return Verdict(False, f"no data for {silent_ms:.0f} ms (timeout {settings.timeout_ms} ms)")
        oldest_time, oldest_bytes, oldest_errors = samples[0]
        if errors - oldest_errors >= settings.error_burst:
            return Verdict(False, f"{errors - oldest_errors} TS sync/continuity errors in the last second")
        floor = settings.min_bitrate_bps
        span = now - oldest_time
        # A just-connected input proves its bitrate over a whole second before it counts.
        if floor and span >= WINDOW_S * 0.9:
            bitrate = (stats.meter.bytes - oldest_bytes) * 8 / span
            if bitrate < floor:
                return Verdict(False, f"bitrate {bitrate / 1000:.0f} kb/s under the floor of {floor / 1000:.0f} kb/s")
        return Verdict(True, "")
