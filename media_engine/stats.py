"""Counters kept on the packet path, and the snapshots read from them about once a second.

The packet path only adds to integers; windows and rates are worked out when a snapshot is taken.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from media_engine.ts import TsAnalyzer


class RateMeter:
    """Bytes and messages with bitrates over the last 1 s and 10 s."""

    __slots__ = ("_history", "bytes", "messages")

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0
        self._history: deque[tuple[float, int]] = deque(maxlen=64)

    def add(self, size: int) -> None:
        self.bytes += size
        self.messages += 1

    def bitrates(self, now: float | None = None) -> dict[str, float]:
        """Call about once a second: it samples the byte count and derives rates from its history."""
        now = time.monotonic() if now is None else now
        self._history.append((now, self.bytes))
        return {"bitrate_1s_bps": self._rate(now, 1.0), "bitrate_10s_bps": self._rate(now, 10.0)}

    def _rate(self, now: float, window: float) -> float:
        # The oldest sample inside the window (at least one earlier sample is needed for a rate).
        oldest = None
        for when, count in self._history:
            if now - when <= window + 0.25:
                oldest = (when, count)
                break
        if oldest is None or now - oldest[0] <= 0:
            return 0.0
        return round((self.bytes - oldest[1]) * 8 / (now - oldest[0]), 1)


@dataclass
class EndpointStats:
    """What every input and output reports."""

    state: str = "idle"
    reason: str = ""
    meter: RateMeter = field(default_factory=RateMeter)
    connected_since: float | None = None
    peer: str | None = None
    connects: int = 0
    disconnects: int = 0
    dropped_messages: int = 0
    ts: TsAnalyzer | None = None

    def connected(self, peer: str | None) -> None:
        self.state = "connected"
        self.reason = ""
        self.peer = peer
        self.connects += 1
        self.connected_since = time.monotonic()

    def disconnected(self, state: str, reason: str) -> None:
        if self.connected_since is not None:
            self.disconnects += 1
        self.state = state
        self.reason = reason
        self.connected_since = None

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        data: dict[str, Any] = {
            "state": self.state,
            "reason": self.reason,
            "bytes": self.meter.bytes,
            "messages": self.meter.messages,
            **self.meter.bitrates(now),
            "peer": self.peer,
            "uptime_s": round(now - self.connected_since, 1) if self.connected_since else 0.0,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "dropped_messages": self.dropped_messages,
        }
        if self.ts is not None:
            counters = self.ts.counters
            data["ts"] = {
                "packets": counters.packets,
                "sync_errors": counters.sync_errors,
                "cc_errors": counters.cc_errors,
                "pat_seen": counters.pat_seen,
                "pmt_seen": counters.pmt_seen,
                "pids": counters.pids,
            }
        return data
