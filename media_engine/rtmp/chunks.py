"""The RTMP chunk stream: messages cut into chunks, interleaved by chunk stream ID, with headers
that carry only what changed since the previous chunk of the same chunk stream."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF
_EXTENDED = 0xFFFFFF
_TIMESTAMP_WRAP = 1 << 32
# Every chunk stream gathers its own message; a peer opening thousands of them is not an encoder.
MAX_CHUNK_STREAMS = 64


class ProtocolError(Exception):
    """The peer broke the protocol; the connection cannot go on."""


class ByteSource(Protocol):
    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes; raises when the connection ends first."""
        ...

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes without consuming them."""
        ...


@dataclass(frozen=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, 32 bits, wrapping
    payload: bytes
    chunk_stream: int


@dataclass
class _ChunkStream:
    timestamp: int = 0
    # The last header's timestamp field (a delta, or absolute for type 0): a type 3 header that
    # starts a new message adds it again, as FFmpeg's and librtmp's writers expect.
    ts_field: int = 0
    extended: bool = False
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    started: bool = False  # a header with a length has been seen
    gathered: bytearray | None = None  # the message being reassembled


class ChunkReader:
    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _ChunkStream] = {}

    def set_chunk_size(self, size: int) -> None:
        size &= MAX_CHUNK_SIZE  # the top bit must be 0
        if size < 1:
            raise ProtocolError(f"chunk size {size} is not allowed")
        self.chunk_size = size

    def abort(self, chunk_stream: int) -> None:
        """Drop the message being gathered on ``chunk_stream`` (Abort Message)."""
        stream = self._streams.get(chunk_stream)
        if stream is not None:
            stream.gathered = None

    def read_message(self) -> Message:
        """Read chunks until one message is whole."""
        while True:
            message = self._read_chunk()
            if message is not None:
                return message

    def _read_chunk(self) -> Message | None:
        read = self._source.read
        (first,) = read(1)
        fmt, csid = first >> 6, first & 0x3F
        if csid == 0:
            csid = 64 + read(1)[0]
        elif csid == 1:
            low, high = read(2)
            csid = 64 + low + (high << 8)
        stream = self._streams.get(csid)
        if stream is None:
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ProtocolError(f"too many chunk streams (opening {csid})")
            stream = self._streams[csid] = _ChunkStream()
        if fmt >= 2 and not stream.started:
            raise ProtocolError(f"chunk stream {csid} starts with a type {fmt} header, which has no length")

        if fmt <= 2:
            header = read((11, 7, 3)[fmt])
            field = int.from_bytes(header[0:3], "big")
            if fmt <= 1:
                stream.started = True
                stream.length = int.from_bytes(header[3:6], "big")
                stream.type_id = header[6]
            if fmt == 0:
                (stream.stream_id,) = struct.unpack("<I", header[7:11])
            stream.extended = field == _EXTENDED
            if stream.extended:
                field = int.from_bytes(read(4), "big")
            if stream.gathered:
                # A new header in the middle of a message: the rest of that message is lost.
                stream.gathered = None
            stream.ts_field = field
            stream.timestamp = field if fmt == 0 else (stream.timestamp + field) % _TIMESTAMP_WRAP
        else:
            # Senders are meant to repeat the extended timestamp on type 3 chunks, and FFmpeg and
            # librtmp do; a few do not. Take the four bytes only when they are that timestamp.
            if stream.extended and int.from_bytes(self._source.peek(4), "big") == stream.ts_field:
                read(4)
            if not stream.gathered:
                stream.timestamp = (stream.timestamp + stream.ts_field) % _TIMESTAMP_WRAP

        if stream.gathered is None:
            stream.gathered = bytearray()
        wanted = min(self.chunk_size, stream.length - len(stream.gathered))
        if wanted:
            stream.gathered += read(wanted)
        if len(stream.gathered) < stream.length:
            return None
        payload, stream.gathered = bytes(stream.gathered), None
        return Message(stream.type_id, stream.stream_id, stream.timestamp, payload, csid)


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes((fmt << 6 | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes((fmt << 6 | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))


class ChunkWriter:
    """Cuts outgoing messages into chunks: a full header first, then type 3 continuations. The
    server sends little (replies, acknowledgements), so no header compression is worth it."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def encode(
        self, chunk_stream: int, type_id: int, payload: bytes, *, stream_id: int = 0, timestamp: int = 0
    ) -> bytes:
        extended = timestamp >= _EXTENDED
        header = (
            _basic_header(0, chunk_stream)
            + struct.pack(">I", min(timestamp, _EXTENDED))[1:]
            + len(payload).to_bytes(3, "big")
            + bytes((type_id,))
            + struct.pack("<I", stream_id)
        )
        extra = struct.pack(">I", timestamp) if extended else b""
        continuation = _basic_header(3, chunk_stream) + extra
        parts = [header, extra]
        for offset in range(0, max(len(payload), 1), self.chunk_size):
            if offset:
                parts.append(continuation)
            parts.append(payload[offset : offset + self.chunk_size])
        return b"".join(parts)
