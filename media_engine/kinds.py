"""Choosing the class that implements an input or output from its protocol and SRT mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from media_engine.config import EndpointConfig

T = TypeVar("T")


class Kinds(Generic[T]):
    """A table of (protocol, SRT mode or None) to constructor. A new protocol adds one row."""

    def __init__(self, what: str, table: dict[tuple[str, str | None], Callable[[EndpointConfig], T]]) -> None:
        self.what = what
        self.table = table

    def build(self, config: EndpointConfig) -> T:
        mode = config.srt.mode if config.srt else None
        kind = self.table.get((config.protocol, mode))
        if kind is None:
            described = f"{config.protocol} {mode}" if mode else config.protocol
            raise ValueError(f"{self.what} {config.name!r}: {described} {self.what}s are not supported yet")
        return kind(config)
