"""Exact reads from a connected socket, buffered: the chunk reader's byte source on both sides of
RTMP (the server's connections and the push output's client)."""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod

RECV_SIZE = 65536


class SocketSource(ABC):
    """Counts what arrived, for acknowledgements. What a timeout, a failure or the end of the
    connection means differs between the sides (the server waits out an idle limit, the client
    gives every read a deadline), so each says it in ``_receive``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._offset = 0
        self.received = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._offset

    @abstractmethod
    def _receive(self) -> bytes:
        """The next bytes from the socket, never empty; raises when none will come."""

    def _fill(self, size: int) -> None:
        while self.buffered < size:
            if self._offset:
                del self._buffer[: self._offset]
                self._offset = 0
            data = self._receive()
            self._buffer += data
            self.received += len(data)

    def read(self, size: int) -> bytes:
        self._fill(size)
        start = self._offset
        self._offset += size
        return bytes(self._buffer[start : self._offset])

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return bytes(self._buffer[self._offset : self._offset + size])
