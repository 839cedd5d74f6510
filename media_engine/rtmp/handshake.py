"""The server side of RTMP's simple handshake (C0 C1 -> S0 S1 S2 -> C2).

The simple handshake is what FFmpeg, OBS and hardware encoders all accept when publishing; the
digest ("complex") handshake only matters to Flash players checking they talk to an Adobe server.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

from media_engine.rtmp.chunks import ByteSource, ProtocolError

VERSION = 3
SIZE = 1536


def serve(source: ByteSource, send: Callable[[bytes], None], started: float) -> None:
    """Read C0 and C1, answer S0 S1 S2, read C2. ``started``: time.monotonic() of the connection,
    the epoch of the timestamps this side sends."""
    (version,) = source.read(1)
    if version != VERSION:
        # 6 is RTMPE (encrypted, Flash-only); anything else is not RTMP at all.
        raise ProtocolError(f"RTMP version {version} is not supported (only plain RTMP, version 3)")
    c1 = source.read(SIZE)
    uptime_ms = int((time.monotonic() - started) * 1000) & 0xFFFFFFFF
    # S1: our time, four zero bytes (which tells the peer this is the simple handshake), random.
    s1 = struct.pack(">II", uptime_ms, 0) + os.urandom(SIZE - 8)
    # S2 echoes C1 byte for byte: librtmp-based encoders compare it with what they sent.
    send(bytes((VERSION,)) + s1 + c1)
    source.read(SIZE)  # C2 echoes S1; nothing in it needs checking for a publisher
