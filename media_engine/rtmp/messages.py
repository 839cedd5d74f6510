"""RTMP message types, and the few control messages and replies the server and the client send."""

from __future__ import annotations

import struct
from typing import Any

from media_engine.rtmp import amf

SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20
AGGREGATE = 22

# User control events
STREAM_BEGIN = 0
PING_REQUEST = 6
PING_RESPONSE = 7

# Chunk stream IDs for what this side sends: 2 is reserved for protocol control messages.
CONTROL_CHUNK_STREAM = 2
COMMAND_CHUNK_STREAM = 3
STATUS_CHUNK_STREAM = 5


def u32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def parse_u32(payload: bytes) -> int:
    """The number a control message (chunk size, abort, window) carries."""
    return struct.unpack(">I", payload[:4])[0]


def user_control(event: int, data: bytes) -> bytes:
    return struct.pack(">H", event) + data


def ping_reply(payload: bytes) -> bytes | None:
    """The User Control payload answering ``payload`` when it is a ping request, else None."""
    if len(payload) >= 6 and struct.unpack(">H", payload[:2])[0] == PING_REQUEST:
        return user_control(PING_RESPONSE, payload[2:6])
    return None


def set_peer_bandwidth(size: int, limit_type: int = 2) -> bytes:
    return u32(size) + bytes((limit_type,))  # 2: dynamic


def status(code: str, description: str, *, level: str = "status", **extra: Any) -> dict[str, Any]:
    return {"level": level, "code": code, "description": description, **extra}


def command(name: str, transaction: float, *values: Any) -> bytes:
    return amf.encode(name, transaction, *values)
