"""The queue between the relay's thread and a transcoder: ``offer`` never blocks, ``read`` does.

The relay hands every message to every output and must never wait; a transcoder reads the stream
as a file, blocking until bytes come. Messages are copied into a bounded queue (a full queue drops
and counts: the transcoder is behind) and read back as one byte stream.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import deque

from media_engine.segmenter import copy_message

QUEUE_MESSAGES = 4096  # about 5 MB: 4 s of a 10 Mb/s input waiting for a busy encoder
WAKE_S = 0.5  # a blocked read looks at ``close`` at least this often, in case a wake-up is missed


class MessageQueue:
    def __init__(self, limit: int = QUEUE_MESSAGES) -> None:
        self.limit = limit
        self.overflows = 0  # messages refused by a full queue
        self._queue: deque[tuple[float, bytes]] = deque()
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._rest = b""  # what a read left of its last message
        self._worst_wait_s = 0.0  # the longest any message read had waited, since last asked

    # the relay's side

    def offer(self, data: ctypes.Array | bytes, length: int) -> bool:
        """Queue a copy of the message; False when it was refused (full or closed)."""
        if self._closed.is_set():
            return False
        if len(self._queue) >= self.limit:
            self.overflows += 1
            return False
        self._queue.append((time.monotonic(), copy_message(data, length)))
        self._ready.set()
        return True

    def close(self) -> None:
        """The end of the stream: a blocked read returns what is left, then b""."""
        self._closed.set()
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __len__(self) -> int:
        return len(self._queue)

    def waited_s(self, now: float | None = None) -> float:
        """The longest wait seen since the last call: of the oldest message still queued, or of
        any message read meanwhile."""
        now = time.monotonic() if now is None else now
        worst, self._worst_wait_s = self._worst_wait_s, 0.0
        try:
            oldest = now - self._queue[0][0]
        except IndexError:
            oldest = 0.0
        return max(worst, oldest)

    # the transcoder's side

    def read(self, size: int = -1, /) -> bytes:
        """At least one byte (b"" once closed and empty), at most ``size`` (whole messages where
        they fit): what is there now, without waiting for more."""
        size = size if size is not None and size > 0 else 1 << 20
        while True:
            if self._rest:
                chunk, self._rest = self._rest[:size], self._rest[size:]
                return chunk
            if self._queue:
                return self._take(size)
            if self._closed.is_set():
                return b""
            self._ready.clear()
            if not self._queue and not self._closed.is_set():
                self._ready.wait(WAKE_S)

    def _take(self, size: int) -> bytes:
        now = time.monotonic()
        parts: list[bytes] = []
        taken = 0
        queue = self._queue
        while queue and taken < size:
            arrived, message = queue.popleft()
            self._worst_wait_s = max(self._worst_wait_s, now - arrived)
            if taken + len(message) > size:
                cut = size - taken
                parts.append(message[:cut])
                self._rest = message[cut:]
                break
            parts.append(message)
            taken += len(message)
        return b"".join(parts)
