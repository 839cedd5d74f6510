"""MPEG-TS over UDP in: unicast, any-source multicast and source-specific multicast.

UDP has no connection, so the input is "up" for as long as its port is bound; whether data flows
is the health check's own data timeout. The state still tells an operator what is happening:
"listening" until datagrams arrive, "connected" (peer = the sender) while they do, and back to
"listening" after a second of silence.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input, Sink
from media_engine.ts import PACKET

log = logging.getLogger(__name__)

# Linux values; Python's socket module does not export these names.
IP_ADD_SOURCE_MEMBERSHIP = getattr(socket, "IP_ADD_SOURCE_MEMBERSHIP", 39)
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

MAX_DATAGRAM = 65536
# The largest message the rest of the engine takes: an SRT output's payload (libsrt's live-mode
# default), and what the splicer rewrites in one go. TS senders use exactly this (7 x 188 bytes).
MAX_MESSAGE = 7 * PACKET
# Over a second at 10 Mb/s (the kernel counts each datagram at about twice its size): enough to
# ride out a stalled thread without the kernel dropping datagrams.
RECV_BUFFER_BYTES = 4 * 1024 * 1024
# How often a silent receive returns, so that stop() and the silence check are prompt.
RECV_TIMEOUT_S = 0.2
SILENCE_S = 1.0
OPTIONS = frozenset({"interface", "source"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class UdpReceive:
    """Where and how to receive, checked when the input is built so a bad setting fails early."""

    host: IPAddress | None  # None: every local address
    port: int
    interface: IPAddress | None = None
    source: IPAddress | None = None

    @property
    def multicast(self) -> bool:
        return self.host is not None and self.host.is_multicast

    @classmethod
    def from_config(cls, config: EndpointConfig) -> UdpReceive:
        where = f"UDP input {config.name!r}"
        unknown = set(config.options) - OPTIONS
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}; known: interface, source")
        if not 0 < config.port < 65536:
            raise ValueError(f"{where}: a port from 1 to 65535 is required")
        host = _address(config.host, where, "host")
        interface = _address(config.options.get("interface", ""), where, "interface")
        source = _address(config.options.get("source", ""), where, "source")
        if host is None or not host.is_multicast:
            # The interface only says where to join a group: without one there is nothing to do.
            if source is not None:
                raise ValueError(f"{where}: a source applies only to a multicast group as host")
            return cls(host, config.port)
        if interface is not None and (interface.version != 4 or host.version != 4):
            raise ValueError(f"{where}: interface is the local IPv4 address to join an IPv4 group on")
        if source is not None and (source.version != 4 or host.version != 4):
            raise ValueError(f"{where}: source-specific multicast is supported for IPv4 groups and sources")
        return cls(host, config.port, interface, source)

    def describe(self) -> str:
        where = f"{self.host or '*'}:{self.port}"
        if self.source is not None:
            where = f"{self.source}@{where}"
        return f"udp {where}" + (f" on {self.interface}" if self.interface else "")


def _address(text: str, where: str, what: str) -> IPAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{where}: {what} must be an IP address, not {text!r}") from None


def open_receiver(settings: UdpReceive) -> tuple[socket.socket, int]:
    """A bound (and, for a group, joined) socket, and its kernel receive buffer size."""
    host = settings.host
    family = socket.AF_INET6 if host is not None and host.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if settings.multicast:
            # Several inputs may share a port, each joined to its own group (as broadcast plants
            # do). A unicast port stays exclusive: two sockets on it would each get only part.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        buffer_bytes = _grow_receive_buffer(sock)
        # A blocking read with a kernel timeout costs one system call a datagram; Python's own
        # timeout would poll before each read.
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, int(RECV_TIMEOUT_S * 1e6)))
        if settings.multicast:
            # Bound to the group, the socket gets that group's datagrams only, not those of every
            # group joined on the same port; IP_MULTICAST_ALL off makes Linux hold to it.
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            sock.bind((str(host), settings.port))
            _join(sock, settings)
        else:
            sock.bind((str(host) if host is not None else "0.0.0.0", settings.port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot receive on {settings.describe()}: {exc.strerror}") from exc
    return sock, buffer_bytes


def _grow_receive_buffer(sock: socket.socket) -> int:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    # The kernel caps SO_RCVBUF at net.core.rmem_max (often 208 KB) and reports twice what it
    # granted; with CAP_NET_ADMIN the cap can be passed, otherwise the capped size will do.
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < 2 * RECV_BUFFER_BYTES:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER_BYTES)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def _join(sock: socket.socket, settings: UdpReceive) -> None:
    group = settings.host
    assert group is not None
    if group.version == 6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group.packed + struct.pack("@I", 0))
        return
    interface = (settings.interface or ipaddress.IPv4Address(0)).packed
    if settings.source is not None:
        # struct ip_mreq_source on Linux: group, interface, source.
        membership = group.packed + interface + settings.source.packed
        sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, membership)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group.packed + interface)


def _peer(sender: tuple[Any, ...]) -> str:
    host, port = sender[0], sender[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UdpInput(Input):
    """Receives MPEG-TS datagrams on ``config.port``.

    ``config.host``: empty for every local address, a local unicast address, or a multicast
    group to join. Options (multicast only; ``interface`` is ignored for unicast): ``interface``,
    the local IPv4 address of the interface to join on (default: the one the routing table
    picks), and ``source``, the only sender accepted (source-specific multicast; IPv4).

    Each datagram is one message, whatever it holds: odd sizes and non-TS payloads are passed on
    so the TS checks count them, and a burst of them takes the input off air through its health.
    A datagram longer than 7 packets (1316 bytes) is passed on in pieces of at most that: one
    message too big for an SRT output would cost it its connection.
    """

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.settings = UdpReceive.from_config(config)
        self.ignored_datagrams = 0  # from a sender other than the source (the kernel filters first)
        self.recv_buffer_bytes = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._piece: ctypes.Array | None = None  # for datagrams longer than one message

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._sock, self.recv_buffer_bytes = open_receiver(self.settings)
        if self.recv_buffer_bytes < RECV_BUFFER_BYTES:
            log.info(
                "%s: receive buffer %d bytes (net.core.rmem_max caps it)", self.config.name, self.recv_buffer_bytes
            )
        self.stats.state = "listening"
        self._thread = threading.Thread(target=self._run, args=(self._sock,), daemon=True, name=self.config.name)
        self._thread.start()

    def _run(self, sock: socket.socket) -> None:
        buffer = ctypes.create_string_buffer(MAX_DATAGRAM)
        view = memoryview(buffer).cast("B")
        source = str(self.settings.source) if self.settings.source is not None else None
        stats = self.stats
        sender: tuple[Any, ...] | None = None
        while not self._stop.is_set():
            try:
                length, address = sock.recvfrom_into(view)
            except (BlockingIOError, TimeoutError):  # the receive timeout
                self._check_silence()
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                # Nothing a UDP receive reports is fatal; say so and keep the port.
                stats.reason = f"receive failed: {exc.strerror or exc}"
                self._stop.wait(RECV_TIMEOUT_S)
                continue
            if source is not None and address[0] != source:
                self.ignored_datagrams += 1
                self._check_silence()
                continue
            if stats.state != "connected":
                sender = address
                stats.connected(_peer(address))
                log.info("%s: receiving from %s", self.config.name, stats.peer)
            elif address != sender:
                sender = address
                stats.peer = _peer(address)
            if length <= MAX_MESSAGE:
                self.deliver(buffer, length, view)
            else:
                self._deliver_pieces(view, length)

    def _deliver_pieces(self, view: memoryview, length: int) -> None:
        piece = self._piece
        if piece is None:
            piece = self._piece = ctypes.create_string_buffer(MAX_MESSAGE)
        piece_view = memoryview(piece).cast("B")
        for offset in range(0, length, MAX_MESSAGE):
            size = min(MAX_MESSAGE, length - offset)
            piece_view[:size] = view[offset : offset + size]
            self.deliver(piece, size, piece_view)

    def _check_silence(self) -> None:
        last = self.last_data_at
        if self.stats.state != "connected" or last is None:
            return
        silent_s = time.monotonic() - last
        if silent_s > SILENCE_S:
            self.stats.disconnected("listening", f"no data for {silent_s * 1000:.0f} ms")
            log.info("%s: %s", self.config.name, self.stats.reason)

    def link_up(self) -> bool:
        # Connectionless: bound is up, and the health's data timeout judges whether data flows.
        return self.stats.state in ("listening", "connected")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()  # leaves the group too
        self.stats.disconnected("stopped", "")

    def snapshot(self) -> dict[str, Any]:
        return {
            **super().snapshot(),
            "ignored_datagrams": self.ignored_datagrams,
            "recv_buffer_bytes": self.recv_buffer_bytes,
        }
