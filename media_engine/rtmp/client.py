"""The client side of RTMP, as much as publishing needs: connect (TCP or TLS), handshake, connect to
the app, publish, then send FLV tags as chunks; used by the RTMP push output.

Why the client is ours and not FFmpeg's: PyAV opens an output URL (avio_open) and writes the
header while holding the GIL, with no timeout and no interrupt callback, and FFmpeg's RTMP
handshake happens right there. A server that accepts the TCP connection and then says nothing
froze every thread of the process, so every route of the worker, for good; one that stops reading
would block a write for as long. Here every socket operation has a timeout, ``close()`` from any
thread ends the connection, and a refusal is reported in the server's own words
("NetStream.Publish.BadName: ...").

URL: ``rtmp://host[:port]/app/stream-key`` (or ``rtmps://``, port 443 unless given), or the URL
without the key plus the key apart, as platforms give them ("server" and "stream key"); the app is
then the URL's whole path.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from media_engine.rtmp import amf, flv, handshake
from media_engine.rtmp import messages as m
from media_engine.rtmp.chunks import ChunkReader, ChunkWriter, ProtocolError
from media_engine.rtmp.server import mask, peer_name
from media_engine.rtmp.socket_source import RECV_SIZE, SocketSource

CHUNK_SIZE = 4096
FLASH_VERSION = "FMLE/3.0 (compatible; Vajra Cast)"
# Chunk streams for what we send, as FFmpeg numbers them (2 and 3 are control and commands).
_CHUNK_STREAMS = {flv.AUDIO: 4, flv.SCRIPT: 5, flv.VIDEO: 6}
_SET_DATA_FRAME = amf.encode("@setDataFrame")
# How long unpublishing may take before the connection is closed under it.
UNPUBLISH_WAIT_S = 1.0


class RtmpError(Exception):
    """The connection cannot go on; the message says why, for the status."""


@dataclass(frozen=True)
class RtmpTarget:
    host: str
    port: int
    tls: bool
    explicit_port: bool
    app: str
    stream_key: str

    @classmethod
    def parse(cls, url: str, stream_key: str = "") -> RtmpTarget:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname:
            raise ValueError("an RTMP output needs an rtmp:// or rtmps:// URL")
        tls = parts.scheme == "rtmps"
        path = parts.path.strip("/")
        query = f"?{parts.query}" if parts.query else ""
        if stream_key:
            app, key = path + query, stream_key.strip()
        else:
            # Keys may carry a query of their own (Facebook's do).
            app, _, key = path.partition("/")
            key += query
        if not app or not key:
            raise ValueError(
                "an RTMP output needs its stream key: rtmp://host/app/stream-key, or the key as option stream_key"
            )
        port = parts.port or (443 if tls else 1935)
        return cls(parts.hostname, port, tls, parts.port is not None, app, key)

    @property
    def tc_url(self) -> str:
        port = f":{self.port}" if self.explicit_port else ""
        return f"{'rtmps' if self.tls else 'rtmp'}://{self.host}{port}/{self.app}"

    def describe(self) -> str:
        return f"{self.tc_url}/{mask(self.stream_key)}"


class _ServerSource(SocketSource):
    """Every read has the connection's timeout: a server that goes quiet fails the connection."""

    def __init__(self, sock: socket.socket, timeout_s: float, closed: threading.Event) -> None:
        super().__init__(sock)
        self._timeout_s = timeout_s
        self._closed = closed

    def _receive(self) -> bytes:
        try:
            data = self._sock.recv(RECV_SIZE)
        except TimeoutError:
            raise RtmpError(f"the server sent nothing for {self._timeout_s:g} s") from None
        except OSError as exc:
            raise RtmpError("stopped" if self._closed.is_set() else f"connection lost: {exc}") from None
        if not data:
            raise RtmpError("stopped" if self._closed.is_set() else "the server closed the connection")
        return data


class RtmpPublisher:
    """One publishing connection."""

    def __init__(self, target: RtmpTarget, timeout_s: float, verify_tls: bool) -> None:
        self.target = target
        self.peer = ""
        self._timeout_s = timeout_s
        self._verify_tls = verify_tls
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock: socket.socket | None = None
        self._source: _ServerSource | None = None
        self._reader: ChunkReader | None = None
        self._writer = ChunkWriter()
        self._stream_id = 0
        self._window = 0  # the server's acknowledgement window; 0 until it says
        self._acked = 0
        self._told_window = False

    # connecting

    def open(self) -> None:
        """Connect, shake hands, connect to the app and publish; raises RtmpError saying why not."""
        target = self.target
        try:
            sock = socket.create_connection((target.host, target.port), timeout=self._timeout_s)
        except TimeoutError:
            raise RtmpError(f"no connection within {self._timeout_s:g} s") from None
        except OSError as exc:
            raise RtmpError(exc.strerror or str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._adopt(sock)
        if target.tls:
            context = ssl.create_default_context()
            if not self._verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            try:
                self._adopt(context.wrap_socket(sock, server_hostname=target.host))
            except (ssl.SSLError, OSError) as exc:
                raise RtmpError(f"TLS failed: {exc}") from None
        assert self._sock is not None
        self.peer = peer_name(self._sock.getpeername())
        self._source = _ServerSource(self._sock, self._timeout_s, self._closed)
        self._reader = ChunkReader(self._source)
        try:
            self._handshake()
            self._publish()
        except (ProtocolError, amf.AmfError) as exc:
            raise RtmpError(f"the server broke the protocol: {exc}") from None

    def _adopt(self, sock: socket.socket) -> None:
        with self._lock:
            if self._closed.is_set():
                sock.close()
                raise RtmpError("stopped")
            self._sock = sock

    def _handshake(self) -> None:
        assert self._source is not None
        # C1: time, four zero bytes (the simple handshake, which every server takes from a
        # publisher), random bytes.
        self._send(bytes((handshake.VERSION,)) + struct.pack(">II", 0, 0) + os.urandom(handshake.SIZE - 8))
        (version,) = self._source.read(1)
        if version != handshake.VERSION:
            raise RtmpError(f"not an RTMP server (it answered version {version})")
        s1 = self._source.read(handshake.SIZE)
        self._source.read(handshake.SIZE)  # S2 echoes our C1: nothing in it needs checking
        self._send(s1)  # C2 echoes S1

    def _publish(self) -> None:
        target = self.target
        self._message(m.CONTROL_CHUNK_STREAM, m.SET_CHUNK_SIZE, m.u32(CHUNK_SIZE))
        self._writer.chunk_size = CHUNK_SIZE
        app = {"app": target.app, "type": "nonprivate", "flashVer": FLASH_VERSION, "tcUrl": target.tc_url}
        self._command("connect", 1, app)
        self._answer(1, "connect")
        # releaseStream and FCPublish are what encoders send before publishing; some platforms
        # wait for them, and none minds them.
        self._command("releaseStream", 2, None, target.stream_key)
        self._command("FCPublish", 3, None, target.stream_key)
        self._command("createStream", 4, None)
        created = self._answer(4, "createStream")
        stream_id = created[3] if len(created) > 3 and isinstance(created[3], float) else 1.0
        self._stream_id = int(stream_id)
        self._command("publish", 5, None, target.stream_key, "live", stream_id=self._stream_id)
        deadline = time.monotonic() + self._timeout_s
        while True:
            values = self._next_command(deadline, "publish")
            if values[0] == "onStatus" and _info(values).get("code") == "NetStream.Publish.Start":
                return

    def _answer(self, transaction: int, what: str) -> list[Any]:
        deadline = time.monotonic() + self._timeout_s
        while True:
            values = self._next_command(deadline, what)
            if values[0] == "_result" and len(values) > 1 and values[1] == transaction:
                return values
            if values[0] == "_error" and len(values) > 1 and values[1] == transaction:
                info = _info(values)
                raise RtmpError(f"the server refused {what}: {_status_text(info)}")

    def _next_command(self, deadline: float, what: str) -> list[Any]:
        """The next command the server sends, handling control messages on the way."""
        while True:
            if time.monotonic() > deadline:
                raise RtmpError(f"no answer to {what} within {self._timeout_s:g} s")
            values = self._receive()
            if values:
                return values

    # while publishing

    def send_tag(self, tag_type: int, timestamp: int, body: bytes) -> int:
        """Publish one FLV tag; returns the bytes sent."""
        self._poll()
        payload = _SET_DATA_FRAME + body if tag_type == flv.SCRIPT else body
        data = self._writer.encode(
            _CHUNK_STREAMS[tag_type], tag_type, payload, stream_id=self._stream_id, timestamp=timestamp
        )
        self._send(data)
        return len(data)

    def _poll(self) -> None:
        """Handle whatever the server sent meanwhile (pings, acknowledgement windows, an error)."""
        sock, source = self._sock, self._source
        assert sock is not None
        assert source is not None
        while source.buffered or (isinstance(sock, ssl.SSLSocket) and sock.pending()) or _readable(sock):
            self._receive()

    # both

    def _receive(self) -> list[Any] | None:
        """Read one message: handle it when it is a control message, return it when a command.
        A status at level "error" (a refused stream key, ...) ends the connection."""
        assert self._reader is not None
        assert self._source is not None
        message = self._reader.read_message()
        kind, payload = message.type_id, message.payload
        values: list[Any] | None = None
        if kind in (m.COMMAND_AMF0, m.COMMAND_AMF3):
            values = amf.decode_all(payload[1:] if kind == m.COMMAND_AMF3 else payload)
            if not values or not isinstance(values[0], str):
                values = None
            elif values[0] == "onStatus" and _info(values).get("level") == "error":
                raise RtmpError(_status_text(_info(values)))
            elif values[0] == "close":
                raise RtmpError("the server closed the stream")
        elif kind == m.SET_CHUNK_SIZE:
            self._reader.set_chunk_size(m.parse_u32(payload))
        elif kind == m.ABORT:
            self._reader.abort(m.parse_u32(payload))
        elif kind == m.WINDOW_ACK_SIZE:
            self._window = m.parse_u32(payload)
        elif kind == m.SET_PEER_BANDWIDTH and not self._told_window:
            # Answered with our own window, as the specification asks and servers expect.
            self._told_window = True
            self._message(m.CONTROL_CHUNK_STREAM, m.WINDOW_ACK_SIZE, payload[:4])
        elif kind == m.USER_CONTROL and (pong := m.ping_reply(payload)) is not None:
            self._message(m.CONTROL_CHUNK_STREAM, m.USER_CONTROL, pong)
        received = self._source.received
        if self._window and received - self._acked >= self._window:
            self._acked = received
            self._message(m.CONTROL_CHUNK_STREAM, m.ACKNOWLEDGEMENT, m.u32(received))
        return values

    def _command(self, name: str, transaction: int, *values: Any, stream_id: int = 0) -> None:
        payload = m.command(name, transaction, *values)
        self._message(m.COMMAND_CHUNK_STREAM, m.COMMAND_AMF0, payload, stream_id=stream_id)

    def _message(self, chunk_stream: int, type_id: int, payload: bytes, *, stream_id: int = 0) -> None:
        self._send(self._writer.encode(chunk_stream, type_id, payload, stream_id=stream_id))

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise RtmpError(f"the server took nothing for {self._timeout_s:g} s") from None
        except OSError as exc:
            if self._closed.is_set():
                raise RtmpError("stopped") from None
            if isinstance(exc, BrokenPipeError | ConnectionResetError):
                raise RtmpError("the server closed the connection") from None
            raise RtmpError(f"connection lost: {exc}") from None

    def unpublish(self) -> None:
        """Tell the server the stream ends, so a platform ends it now rather than after a timeout."""
        assert self._sock is not None
        with contextlib.suppress(RtmpError, OSError):
            self._sock.settimeout(UNPUBLISH_WAIT_S)
            self._command("FCUnpublish", 6, None, self.target.stream_key)
            self._command("deleteStream", 7, None, float(self._stream_id))

    def close(self) -> None:
        """From any thread: whatever the connection is doing fails at once."""
        with self._lock:
            self._closed.set()
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _readable(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _info(values: list[Any]) -> dict[str, Any]:
    """The information object of a _result, _error or onStatus command."""
    return next((value for value in values[2:] if isinstance(value, dict)), {})


def _status_text(info: dict[str, Any]) -> str:
    code, description = str(info.get("code", "")), str(info.get("description", ""))
    return ": ".join(part for part in (code, description) if part) or "no reason given"
