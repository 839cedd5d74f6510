"""Figures as the live pages show them; ``live.js`` formats the charts' axes the same way."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def bitrate(bits_per_second: float | int | None) -> str:
    if bits_per_second is None or bits_per_second == "":
        return "—"
    value = float(bits_per_second)
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f} Mb/s"
    return f"{value / 1000:.0f} kb/s"


@register.filter
def milliseconds(value: float | int | None) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.1f} ms"
