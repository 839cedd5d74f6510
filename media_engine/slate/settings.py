"""The slate's options, parsed and checked once, so a bad value is refused when the input is built
rather than when the slate starts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class SlateSettings:
    """What an operator may set in the input's options; every one has a default."""

    width: int = 1280
    height: int = 720
    fps: Fraction = Fraction(25)
    tone_hz: float = 1000.0  # 0 for silence
    text: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> SlateSettings:
        defaults = cls()
        width = _option(options, "width", defaults.width, int, 32, 3840)
        height = _option(options, "height", defaults.height, int, 32, 2160)
        if width % 2 or height % 2:
            raise ValueError(f"slate size {width}x{height}: width and height must be even")
        fps = _option(options, "fps", defaults.fps, lambda text: Fraction(text).limit_denominator(1001), 1, 120)
        tone_hz = _option(options, "tone_hz", defaults.tone_hz, float, 0, 20000)
        return cls(width, height, fps, tone_hz, str(options.get("text", "")).strip())

    @property
    def frames_per_loop(self) -> int:
        # One GOP a loop, no longer than a second, so a keyframe comes at least once a second.
        return max(1, math.floor(self.fps))


def _option(options: Mapping[str, str], key: str, default: Any, parse: Any, low: float, high: float) -> Any:
    raw = options.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = parse(str(raw).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"slate option {key}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"slate option {key}={raw!r} is out of range ({low:g} to {high:g})")
    return value
