"""Mapping decoded pictures onto a constant output frame rate.

Output frame ``n`` is shown at ``origin + n / fps``. A picture takes the slot nearest its own
time; slots it skipped over repeat the picture before it (so a new picture never shows early),
and a picture whose slot is already taken is dropped. Pictures are placed by their own times,
never counted, so an input that stutters or changes rate cannot make the output drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# A jump forward by more than this is not filled with copies of an old picture: the output's
# timestamps skip ahead instead (the timeline caps pauses at about a second anyway).
MAX_REPEAT_S = Fraction(2)


@dataclass(frozen=True)
class Placement:
    """What to encode for one picture: ``repeat`` copies of the previous picture, then this one
    at ``slot`` unless ``dropped``."""

    slot: int
    repeat: int
    dropped: bool
    skipped: int = 0  # slots left empty (a jump too long to fill)


class FrameRateMapper:
    def __init__(self, fps: Fraction, origin: Fraction | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"frame rate must be positive, not {fps}")
        self.fps = Fraction(fps)
        self.origin = origin  # seconds: the time of slot 0; None: the first picture's
        self.next_slot = 0  # the first slot not filled yet
        self.dropped = 0
        self.duplicated = 0
        self.emitted = 0

    def slot_time(self, slot: int) -> Fraction:
        assert self.origin is not None
        return self.origin + slot / self.fps

    def place(self, seconds: Fraction) -> Placement:
        """Where the picture shown at ``seconds`` goes; updates the counts."""
        if self.origin is None:
            self.origin = seconds
        slot = math.floor((seconds - self.origin) * self.fps + Fraction(1, 2))
        if slot < self.next_slot:
            self.dropped += 1
            return Placement(self.next_slot - 1, 0, dropped=True)
        repeat = slot - self.next_slot
        skipped = 0
        if repeat > MAX_REPEAT_S * self.fps or self.emitted == 0:
            repeat, skipped = 0, repeat
        self.duplicated += repeat
        self.emitted += repeat + 1
        self.next_slot = slot + 1
        return Placement(slot, repeat, dropped=False, skipped=skipped)
