"""What every input offers the relay: start with a sink, stop, report stats."""

from __future__ import annotations

import ctypes
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Protocol

from media_engine.config import EndpointConfig
from media_engine.stats import EndpointStats
from media_engine.ts import TsAnalyzer


class Sink(Protocol):
    """Receives each message the input reads. ``data`` is only valid during the call."""

    def __call__(self, data: ctypes.Array | bytes, length: int) -> None: ...


class Input(ABC):
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.stats = EndpointStats(ts=TsAnalyzer())
        self._stop = threading.Event()
        self._sink: Sink | None = None
        self.last_data_at: float | None = None  # time.monotonic() of the last message

    @abstractmethod
    def start(self, sink: Sink) -> None:
        """Begin delivering messages to ``sink`` from a thread of the input's own."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and release the port or connection; returns when the input's threads are done."""

    def deliver(self, data: ctypes.Array | bytes, length: int, view: memoryview | bytes | None = None) -> None:
        """Count, check and pass on one message. ``view`` reads the same bytes as integers (a ctypes
        buffer indexes as 1-byte strings); plain ``bytes`` need none."""
        self.last_data_at = time.monotonic()
        self.stats.meter.add(length)
        self.stats.ts.feed(data if view is None else view, length)  # type: ignore[union-attr]
        self._sink(data, length)  # type: ignore[misc]

    def link_up(self) -> bool:
        """Whether the input has a live connection. Connectionless kinds override this."""
        return self.stats.state == "connected"

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.config.id, "name": self.config.name, **self.stats.snapshot()}
