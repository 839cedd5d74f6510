"""What every output offers the relay: ``offer`` a message without ever blocking the input."""

from __future__ import annotations

import ctypes
import threading
from abc import ABC, abstractmethod
from typing import Any

from media_engine.config import EndpointConfig
from media_engine.stats import EndpointStats


class Output(ABC):
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.stats = EndpointStats()
        self._stop = threading.Event()

    @abstractmethod
    def start(self) -> None:
        """Open or begin connecting, in the background."""

    @abstractmethod
    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        """Send or queue one message. Must return at once: a full output drops and counts."""

    @abstractmethod
    def stop(self) -> None:
        """Close; returns when the output's threads are done."""

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.config.id, "name": self.config.name, **self.stats.snapshot()}
