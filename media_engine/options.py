"""Reading a kind's own settings from ``EndpointConfig.options``, where every value is a string.

A bad value fails the relay's construction with a message naming the endpoint and the option,
before any socket is opened.
"""

from __future__ import annotations

import math
from typing import TypeVar

from media_engine.config import EndpointConfig

Number = TypeVar("Number", int, float)


def int_option(config: EndpointConfig, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = str(config.options.get(name, "")).strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{config.name!r}: option {name} must be a whole number, not {raw!r}") from None
    return _in_range(config, name, value, minimum, maximum)


def float_option(
    config: EndpointConfig, name: str, default: float, *, minimum: float, maximum: float | None = None
) -> float:
    raw = str(config.options.get(name, "")).strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{config.name!r}: option {name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{config.name!r}: option {name} must be a finite number, not {raw!r}")
    return _in_range(config, name, value, minimum, maximum)


def _in_range(config: EndpointConfig, name: str, value: Number, minimum: Number, maximum: Number | None) -> Number:
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum:g} to {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise ValueError(f"{config.name!r}: option {name} must be {bounds}, not {value:g}")
    return value
