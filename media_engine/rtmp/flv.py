"""FLV framing of what a publisher sends and of what the push output publishes: RTMP audio, video
and data messages are FLV tag bodies already, so a tag is an 11-byte header in front of the
payload and its size behind it."""

from __future__ import annotations

import struct

AUDIO = 8
VIDEO = 9
SCRIPT = 18

_HAS_AUDIO = 0x04
_HAS_VIDEO = 0x01
TAG_HEADER = 11


def header(*, audio: bool, video: bool) -> bytes:
    """The file header and the first (zero) previous-tag size."""
    flags = (_HAS_AUDIO if audio else 0) | (_HAS_VIDEO if video else 0)
    return b"FLV\x01" + bytes((flags,)) + struct.pack(">I", 9) + b"\x00\x00\x00\x00"


def tag(tag_type: int, timestamp: int, body: bytes) -> bytes:
    timestamp &= 0xFFFFFFFF
    size = len(body)
    return b"".join(
        (
            bytes((tag_type,)),
            size.to_bytes(3, "big"),
            (timestamp & 0xFFFFFF).to_bytes(3, "big"),
            bytes((timestamp >> 24,)),  # the timestamp's top byte comes last
            b"\x00\x00\x00",  # stream ID, always 0
            body,
            struct.pack(">I", TAG_HEADER + size),
        )
    )


def parse_tag_header(data: bytes | bytearray, offset: int) -> tuple[int, int, int]:
    """(type, body size, timestamp) of the tag whose header starts at ``offset``."""
    size = int.from_bytes(data[offset + 1 : offset + 4], "big")
    timestamp = int.from_bytes(data[offset + 4 : offset + 7], "big") | data[offset + 7] << 24
    return data[offset], size, timestamp


def split_aggregate(timestamp: int, payload: bytes) -> list[tuple[int, int, bytes]]:
    """The (type, timestamp, body) of each tag in an Aggregate message. Its tags carry their own
    timestamps; they are moved so that the first one falls on the message's timestamp."""
    tags = []
    offset, first = 0, None
    while offset + TAG_HEADER <= len(payload):
        tag_type, size, own = parse_tag_header(payload, offset)
        body = payload[offset + TAG_HEADER : offset + TAG_HEADER + size]
        if len(body) < size:
            break
        first = own if first is None else first
        tags.append((tag_type, (timestamp + own - first) & 0xFFFFFFFF, body))
        offset += TAG_HEADER + size + 4  # and the previous-tag size after it
    return tags
