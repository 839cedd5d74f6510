"""What a transcoder reports: frames out, how fast, what was dropped or repeated, and whether it
keeps up with the live input.

Counters are plain integers bumped on the transcoder's thread; rates and the ``behind`` verdict
are worked out when a snapshot is taken (about once a second), or when the input queue is read.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from fractions import Fraction
from typing import Any

# Rates are measured over about this long.
WINDOW_S = 5.0
# Input waiting longer than this for the transcoder means it cannot keep up with realtime.
BEHIND_AFTER_S = 1.0
# Once behind, it must keep up for this long before it counts as caught up: no flapping events.
CAUGHT_UP_AFTER_S = 3.0

SNAPSHOT_KEYS = (
    "encoder",
    "fps",
    "speed",
    "frames",
    "dropped_frames",
    "duplicated_frames",
    "decode_errors",
    "behind",
    "behind_reason",
)


class RenditionStats:
    """One rendition's output: frames encoded (repeats included), dropped and repeated pictures."""

    def __init__(self, name: str, encoder: str = "") -> None:
        self.name = name
        self.encoder = encoder  # e.g. "libx264 (software)"
        self.fps: Fraction | None = None  # the output frame rate, once known
        self.frames = 0
        self.dropped_frames = 0
        self.duplicated_frames = 0
        self._history: deque[tuple[float, int]] = deque(maxlen=64)

    def rates(self, now: float, since: float | None) -> tuple[float, float]:
        """(frames per second, output media seconds per wall second) over the last few seconds;
        ``since``: when the transcoder started, the reference before any earlier sample."""
        self._history.append((now, self.frames))
        oldest = next(((when, count) for when, count in self._history if now - when <= WINDOW_S + 0.25), None)
        if oldest is None or oldest[0] >= now:
            oldest = (since, 0) if since is not None else None
        if oldest is None or oldest[0] >= now:
            return 0.0, 0.0
        fps = (self.frames - oldest[1]) / (now - oldest[0])
        speed = fps / float(self.fps) if self.fps else 0.0
        return round(fps, 2), round(speed, 3)


class Behind:
    """Whether the transcoder falls behind its live input, with hysteresis."""

    def __init__(self) -> None:
        self.behind = False
        self.reason = ""
        self._lock = threading.Lock()
        self._last_bad: float | None = None
        self._overflows_seen = 0

    def update(self, now: float, oldest_wait_s: float, overflows: int) -> None:
        """``oldest_wait_s``: how long the oldest queued message has waited; ``overflows``: how
        many messages a full queue refused so far."""
        with self._lock:
            reason = ""
            if overflows > self._overflows_seen:
                self._overflows_seen = overflows
                reason = f"input queue full: {overflows} messages dropped so far"
            elif oldest_wait_s > BEHIND_AFTER_S:
                reason = f"input waits {oldest_wait_s:.1f} s for the encoder"
            if reason:
                self._last_bad = now
                self.behind, self.reason = True, reason
            elif self.behind and self._last_bad is not None and now - self._last_bad >= CAUGHT_UP_AFTER_S:
                self.behind, self.reason = False, ""


class TranscodeStats:
    """A transcoder's figures. The first rendition's counts stand for the transcoder's; a ladder
    also reports each rendition's own."""

    def __init__(self, renditions: list[RenditionStats]) -> None:
        if not renditions:
            raise ValueError("a transcoder has at least one rendition")
        self.renditions = renditions
        self.decode_errors = 0
        self.behind = Behind()
        self.started_at: float | None = None  # time.monotonic()
        self.ended_at: float | None = None

    @property
    def encoder(self) -> str:
        return self.renditions[0].encoder

    @property
    def frames(self) -> int:
        return self.renditions[0].frames

    @property
    def dropped_frames(self) -> int:
        return self.renditions[0].dropped_frames

    @property
    def duplicated_frames(self) -> int:
        return self.renditions[0].duplicated_frames

    @property
    def elapsed_s(self) -> float:
        """Wall time from the start of ``run`` to its end (or to now while it runs)."""
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started_at

    @property
    def fps(self) -> float:
        """Output frames per second over the whole run (a snapshot's ``fps`` is the recent rate)."""
        elapsed = self.elapsed_s
        return self.frames / elapsed if elapsed > 0 else 0.0

    @property
    def speed(self) -> float:
        """Output media seconds per wall second over the whole run."""
        rate = self.renditions[0].fps
        return self.fps / float(rate) if rate else 0.0

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        return self.rendition_snapshot(0, now)

    def rendition_snapshot(self, index: int, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        if self.ended_at is not None:
            now = min(now, self.ended_at)
        rendition = self.renditions[index]
        fps, speed = rendition.rates(now, self.started_at) if self.started_at is not None else (0.0, 0.0)
        return {
            "encoder": rendition.encoder,
            "fps": fps,
            "speed": speed,
            "frames": rendition.frames,
            "dropped_frames": rendition.dropped_frames,
            "duplicated_frames": rendition.duplicated_frames,
            "decode_errors": self.decode_errors,
            "behind": self.behind.behind,
            "behind_reason": self.behind.reason,
        }
