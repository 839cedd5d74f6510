from __future__ import annotations

import threading


class Backoff:
    """Reconnect delays that double from ``first`` up to ``longest``, reset after a good connection."""

    def __init__(self, first: float = 0.2, longest: float = 5.0) -> None:
        self.first = first
        self.longest = longest
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def wait(self, stop: threading.Event) -> bool:
        """Sleep for the next delay; returns False when ``stop`` was set meanwhile."""
        delay = self._next
        self._next = min(self._next * 2, self.longest)
        return not stop.wait(delay)
