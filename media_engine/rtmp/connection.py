"""One encoder's TCP connection, served in a thread of its own: handshake, chunk stream, commands
(connect, createStream, publish, ...) and the audio, video and metadata it then publishes."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any, Protocol

from media_engine.rtmp import amf, flv, handshake
from media_engine.rtmp import messages as m
from media_engine.rtmp.chunks import ChunkReader, ChunkWriter, Message, ProtocolError
from media_engine.rtmp.socket_source import RECV_SIZE, SocketSource

log = logging.getLogger(__name__)

# Reads wake this often, so a close from another thread or an idle limit is noticed promptly.
POLL_S = 0.5
# A connection that sends nothing for this long (during the handshake, between commands or while
# publishing) is dropped.
IDLE_TIMEOUT_S = 10.0
# What we ask the peer to acknowledge after, and tell it we take before acknowledging.
WINDOW = 2_500_000
OUT_CHUNK_SIZE = 4096
# After a refusal, how long the peer gets to read it and hang up before the socket closes.
_LINGER_S = 2.0


class Ended(Exception):
    """The connection is over; the message says why."""


class Publication(Protocol):
    """Where a publishing connection's FLV tags go; returned by whoever takes the publisher."""

    def media(self, tag_type: int, timestamp: int, body: bytes) -> bool:
        """False: the taker cannot keep up, the publication ends."""
        ...

    def end(self, reason: str) -> None: ...


class Router(Protocol):
    """What a connection asks of the server that accepted it."""

    def take_publisher(self, connection: Connection) -> Publication | None:
        """The publication for ``connection.app`` and ``connection.stream_key``, or None to refuse."""
        ...

    def forget(self, connection: Connection) -> None: ...


class _SocketSource(SocketSource):
    """Reads with a poll timeout, so a close from another thread or the idle limit is noticed."""

    def __init__(self, sock: socket.socket, closing: threading.Event, why: list[str]) -> None:
        super().__init__(sock)
        self._closing = closing
        self._why = why
        self.last_data = time.monotonic()

    def _receive(self) -> bytes:
        while True:
            if self._closing.is_set():
                raise Ended(self._why[0] if self._why else "closed")
            try:
                data = self._sock.recv(RECV_SIZE)
            except TimeoutError:
                if time.monotonic() - self.last_data > IDLE_TIMEOUT_S:
                    raise Ended(f"nothing received for {IDLE_TIMEOUT_S:.0f} s") from None
                continue
            except OSError as exc:
                raise Ended(self._why[0] if self._closing.is_set() and self._why else str(exc)) from None
            if not data:
                raise Ended(self._why[0] if self._closing.is_set() and self._why else "the peer closed the connection")
            self.last_data = time.monotonic()
            return data


def _app_name(raw: Any) -> str:
    """The application part of the connect command, without query or slashes ("live/?a=b" -> "live")."""
    text = raw if isinstance(raw, str) else ""
    return text.split("?", 1)[0].strip("/")


class Connection:
    def __init__(self, sock: socket.socket, peer: str, router: Router, port: int) -> None:
        self.peer = peer
        self.port = port
        self.app = ""
        self.stream_key = ""
        self._sock = sock
        self._router = router
        self._closing = threading.Event()
        self._close_reason: list[str] = []
        self._source = _SocketSource(sock, self._closing, self._close_reason)
        self._reader = ChunkReader(self._source)
        self._writer = ChunkWriter()
        self._started = time.monotonic()
        self._ack_window = WINDOW
        self._acked = 0
        self._next_stream_id = 1
        self._publication: Publication | None = None
        self._linger = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rtmp {peer}")

    def start(self) -> None:
        self._thread.start()

    def close(self, reason: str) -> None:
        """End the connection from any thread; its own thread notices within POLL_S."""
        if not self._close_reason:
            self._close_reason.append(reason)
        self._closing.set()
        # Not connected any more (OSError): its thread is ending anyway.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # the connection's thread

    def _run(self) -> None:
        why = ""
        try:
            self._sock.settimeout(POLL_S)
            handshake.serve(self._source, self._send, self._started)
            while True:
                self._handle(self._reader.read_message())
                self._acknowledge()
        except Ended as exc:
            why = str(exc)
        except (ProtocolError, amf.AmfError) as exc:
            why = f"protocol error: {exc}"
            log.warning("rtmp port %s: %s: %s", self.port, self.peer, why)
        except Exception as exc:
            why = f"failed: {exc}"
            log.exception("rtmp port %s: connection from %s failed", self.port, self.peer)
        finally:
            self._finish(why)

    def _finish(self, why: str) -> None:
        if self._publication is not None:
            self._publication.end(why)
            self._publication = None
        if self._linger:
            self._hang_up_gently()
        try:
            self._sock.close()
        finally:
            self._router.forget(self)
        log.debug("rtmp port %s: %s gone: %s", self.port, self.peer, why)

    def _hang_up_gently(self) -> None:
        """Let the peer read the refusal before the connection goes: closing a socket with unread
        input resets it, and the peer might then see only "connection reset"."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_S
            while time.monotonic() < deadline and not self._closing.is_set():
                try:
                    if not self._sock.recv(RECV_SIZE):
                        return
                except TimeoutError:
                    continue
        except OSError:
            return

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise Ended(self._close_reason[0] if self._close_reason else f"sending failed: {exc}") from None

    def _send_message(
        self, chunk_stream: int, type_id: int, payload: bytes, *, stream_id: int = 0, timestamp: int = 0
    ) -> None:
        self._send(self._writer.encode(chunk_stream, type_id, payload, stream_id=stream_id, timestamp=timestamp))

    def _acknowledge(self) -> None:
        received = self._source.received
        if received - self._acked >= self._ack_window:
            self._acked = received
            self._send_message(m.CONTROL_CHUNK_STREAM, m.ACKNOWLEDGEMENT, m.u32(received))

    def _handle(self, message: Message) -> None:
        kind, payload = message.type_id, message.payload
        if kind in (m.AUDIO, m.VIDEO):
            self._media(kind, message.timestamp, payload)
        elif kind in (m.DATA_AMF0, m.DATA_AMF3):
            self._data(message.timestamp, payload[1:] if kind == m.DATA_AMF3 else payload)
        elif kind == m.AGGREGATE:
            for tag_type, timestamp, body in flv.split_aggregate(message.timestamp, payload):
                if tag_type in (flv.AUDIO, flv.VIDEO):
                    self._media(tag_type, timestamp, body)
        elif kind in (m.COMMAND_AMF0, m.COMMAND_AMF3):
            self._command(message, payload[1:] if kind == m.COMMAND_AMF3 else payload)
        elif kind == m.SET_CHUNK_SIZE:
            self._reader.set_chunk_size(m.parse_u32(payload))
        elif kind == m.ABORT:
            self._reader.abort(m.parse_u32(payload))
        elif kind == m.WINDOW_ACK_SIZE:
            self._ack_window = max(1, m.parse_u32(payload))
        elif kind == m.USER_CONTROL and (pong := m.ping_reply(payload)) is not None:
            self._send_message(m.CONTROL_CHUNK_STREAM, m.USER_CONTROL, pong)
        # Acknowledgements and peer bandwidth need nothing from a server that sends this little.

    def _media(self, tag_type: int, timestamp: int, body: bytes) -> None:
        if self._publication is None or not body:
            return  # before publish (or after unpublish) media has nowhere to go
        if not self._publication.media(tag_type, timestamp, body):
            raise Ended("the remuxer stopped taking media (it failed or fell behind)")

    def _data(self, timestamp: int, payload: bytes) -> None:
        if self._publication is None:
            return
        try:
            first, offset = amf.decode_first(payload)
            if first == "@setDataFrame":
                payload = payload[offset:]  # what follows is the script tag: "onMetaData", {...}
                first, _ = amf.decode_first(payload)
        except amf.AmfError:
            return  # metadata only helps; a stream goes on without it
        if first == "onMetaData":
            self._media(flv.SCRIPT, timestamp, payload)

    # commands

    def _command(self, message: Message, payload: bytes) -> None:
        values = amf.decode_prefix(payload)
        if not values or not isinstance(values[0], str):
            return
        name = values[0]
        transaction = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        arguments = values[3:]
        if name == "connect":
            self._connect(transaction, values[2] if len(values) > 2 and isinstance(values[2], dict) else {})
        elif name == "createStream":
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._reply(transaction, None, float(stream_id))
        elif name == "publish":
            self._publish(message.stream_id, arguments)
        elif name in ("releaseStream", "FCPublish"):
            if transaction:
                self._reply(transaction, None, amf.UNDEFINED_VALUE)
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            self._unpublish()
        elif name == "play":
            self._status(message.stream_id, "error", "NetStream.Play.Failed", "This gateway only takes publishers.")
            self._linger = True
            raise Ended("refused: a player, not a publisher")
        # Other commands (_checkbw, getStreamLength, ...) are optional and go unanswered.

    def _reply(self, transaction: float, *values: Any) -> None:
        self._send_message(m.COMMAND_CHUNK_STREAM, m.COMMAND_AMF0, m.command("_result", transaction, *values))

    def _status(self, stream_id: int, level: str, code: str, description: str, **extra: Any) -> None:
        info = m.status(code, description, level=level, **extra)
        payload = m.command("onStatus", 0.0, None, info)
        self._send_message(m.STATUS_CHUNK_STREAM, m.COMMAND_AMF0, payload, stream_id=stream_id)

    def _connect(self, transaction: float, properties: dict[str, Any]) -> None:
        self.app = _app_name(properties.get("app"))
        self._send_message(m.CONTROL_CHUNK_STREAM, m.WINDOW_ACK_SIZE, m.u32(WINDOW))
        self._send_message(m.CONTROL_CHUNK_STREAM, m.SET_PEER_BANDWIDTH, m.set_peer_bandwidth(WINDOW))
        self._send_message(m.CONTROL_CHUNK_STREAM, m.SET_CHUNK_SIZE, m.u32(OUT_CHUNK_SIZE))
        self._writer.chunk_size = OUT_CHUNK_SIZE
        self._send_message(m.CONTROL_CHUNK_STREAM, m.USER_CONTROL, m.user_control(m.STREAM_BEGIN, m.u32(0)))
        server = {"fmsVer": "FMS/3,5,7,7009", "capabilities": 31.0, "mode": 1.0}
        # Commands here are AMF0 whatever encoding the peer offers; saying so makes it use AMF0 too.
        info = m.status("NetConnection.Connect.Success", "Connection succeeded.", objectEncoding=0.0)
        self._reply(transaction, server, info)

    def _publish(self, stream_id: int, arguments: list[Any]) -> None:
        key = arguments[0] if arguments and isinstance(arguments[0], str) else ""
        if self._publication is not None:
            self._status(stream_id, "error", "NetStream.Publish.BadName", "This connection already publishes.")
            return
        self.stream_key = key
        publication = self._router.take_publisher(self)
        if publication is None:
            self._status(stream_id, "error", "NetStream.Publish.BadName", "Unknown application or stream key.")
            self._linger = True
            raise Ended("refused: unknown application or stream key")
        self._publication = publication
        self._send_message(m.CONTROL_CHUNK_STREAM, m.USER_CONTROL, m.user_control(m.STREAM_BEGIN, m.u32(stream_id)))
        self._status(stream_id, "status", "NetStream.Publish.Start", "Publishing.", details=key)

    def _unpublish(self) -> None:
        if self._publication is not None:
            self._publication.end("the publisher stopped publishing")
            self._publication = None
