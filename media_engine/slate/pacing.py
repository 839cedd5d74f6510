"""Real-time pacing by the stream's own PCRs, so the slate leaves at the rate an encoder's output
would and a receiver's buffer neither starves nor overflows."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import pairwise

from media_engine.ts import PACKET, SYNC

MESSAGE = 7 * PACKET
_PCR_WRAP = (1 << 33) * 300
_PCR_HZ = 27_000_000


class Pacer:
    """Takes the muxer's bytes and cuts them into messages, each due when its last byte would
    leave a real-time sender: bytes between two PCRs are spread evenly over the time between."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._read = 0  # where the next message starts
        self._scanned = 0  # where the next packet to look at for a PCR starts
        self._marks: deque[tuple[int, float]] = deque()  # (offset, seconds since the first PCR)
        self._last_pcr: int | None = None
        self._clock = 0.0

    def write(self, data: bytes) -> int:
        self._data += data
        self._scan()
        return len(data)

    def _scan(self) -> None:
        data, offset = self._data, self._scanned
        while offset + PACKET <= len(data):
            if data[offset] != SYNC:
                raise ValueError("the muxer wrote a packet without a sync byte")
            # An adaptation field long enough for a PCR, with the PCR flag set.
            if data[offset + 3] & 0x20 and data[offset + 4] >= 7 and data[offset + 5] & 0x10:
                self._mark(offset, data[offset + 6 : offset + 12])
            offset += PACKET
        self._scanned = offset

    def _mark(self, offset: int, field: bytes | bytearray) -> None:
        base = field[0] << 25 | field[1] << 17 | field[2] << 9 | field[3] << 1 | field[4] >> 7
        pcr = base * 300 + ((field[4] & 1) << 8 | field[5])
        if self._last_pcr is None:
            self._marks.append((0, 0.0))  # what came before the first PCR is due with it
        else:
            # PCRs wrap after 26.5 hours; the clock here does not.
            self._clock += (pcr - self._last_pcr) % _PCR_WRAP / _PCR_HZ
        self._last_pcr = pcr
        self._marks.append((offset, self._clock))

    def next_due(self) -> float | None:
        """When the next whole message is due (seconds since the first PCR), or None until the
        muxer has written past it."""
        end = self._read + MESSAGE
        if end > self._scanned:
            return None
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= self._read:
            marks.popleft()
        for (start, start_s), (stop, stop_s) in pairwise(marks):
            if stop >= end:
                return stop_s if stop == start else start_s + (stop_s - start_s) * (end - start) / (stop - start)
        return None

    def take(self) -> bytes:
        message = bytes(self._data[self._read : self._read + MESSAGE])
        self._read += MESSAGE
        if self._read >= 1 << 16:  # drop what was sent now and then, not on every message
            read = self._read
            del self._data[:read]
            self._read, self._scanned = 0, self._scanned - read
            self._marks = deque((offset - read, when) for offset, when in self._marks)
        return message

    def drain(self) -> Iterator[bytes]:
        """Everything not taken yet, in messages; the last may be shorter."""
        end = self._scanned
        for start in range(self._read, end, MESSAGE):
            yield bytes(self._data[start : min(start + MESSAGE, end)])
        self._read = end
