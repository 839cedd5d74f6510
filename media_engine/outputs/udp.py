"""MPEG-TS over UDP out, unicast or multicast: each offered message goes out as one datagram.

There is no connection to lose, so the output never stops on its own: a full socket buffer drops
the message and counts it, and any other failure (an ICMP "port unreachable" from a unicast
destination, no route to it) is counted and shown as the reason while sending goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from media_engine.config import EndpointConfig
from media_engine.outputs.base import Output

log = logging.getLogger(__name__)

SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # Linux; not exported by Python

# Room for the biggest bursts an encoder sends (a keyframe's worth) at tens of Mb/s.
SEND_BUFFER_BYTES = 4 * 1024 * 1024
# The last send error stays the reason this long after it stopped happening.
REASON_HOLD_S = 5.0
# Connecting a UDP socket only looks up the route; without one it is tried again this often.
RECONNECT_S = 1.0
MULTICAST_TTL = 1
OPTIONS = frozenset({"ttl", "interface"})
# A kernel queue that is momentarily full: the message is dropped like any other full output's.
_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class UdpSend:
    host: IPAddress
    port: int
    ttl: int | None  # None: the system default (unicast only)
    interface: IPAddress | None = None

    @property
    def multicast(self) -> bool:
        return self.host.is_multicast

    @property
    def destination(self) -> str:
        return f"[{self.host}]:{self.port}" if self.host.version == 6 else f"{self.host}:{self.port}"

    @classmethod
    def from_config(cls, config: EndpointConfig) -> UdpSend:
        where = f"UDP output {config.name!r}"
        unknown = set(config.options) - OPTIONS
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}; known: ttl, interface")
        try:
            host = ipaddress.ip_address(config.host)
        except ValueError:
            raise ValueError(f"{where}: host must be the destination's IP address, not {config.host!r}") from None
        if not 0 < config.port < 65536:
            raise ValueError(f"{where}: a port from 1 to 65535 is required")
        ttl_text = config.options.get("ttl", "")
        ttl: int | None = MULTICAST_TTL if host.is_multicast else None
        if ttl_text:
            if not ttl_text.isdigit() or not 1 <= int(ttl_text) <= 255:
                raise ValueError(f"{where}: ttl must be a whole number from 1 to 255, not {ttl_text!r}")
            ttl = int(ttl_text)
        interface = None
        # The interface only says where multicast leaves: unicast follows the routing table.
        if config.options.get("interface") and host.is_multicast:
            if host.version != 4:
                raise ValueError(f"{where}: interface applies only to an IPv4 multicast destination")
            try:
                interface = ipaddress.IPv4Address(config.options["interface"])
            except ValueError:
                raise ValueError(f"{where}: interface must be a local IPv4 address") from None
        return cls(host, config.port, ttl, interface)


def open_sender(settings: UdpSend) -> socket.socket:
    v6 = settings.host.version == 6
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _grow_send_buffer(sock)
        if settings.ttl is not None:
            if v6:
                option = socket.IPV6_MULTICAST_HOPS if settings.multicast else socket.IPV6_UNICAST_HOPS
                sock.setsockopt(socket.IPPROTO_IPV6, option, settings.ttl)
            else:
                option = socket.IP_MULTICAST_TTL if settings.multicast else socket.IP_TTL
                sock.setsockopt(socket.IPPROTO_IP, option, settings.ttl)
        if settings.interface is not None:
            # Also makes the interface's address the source, which source-specific receivers filter on.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, settings.interface.packed)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot send to udp {settings.destination}: {exc.strerror}") from exc
    return sock


def _grow_send_buffer(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 2 * SEND_BUFFER_BYTES:
        with contextlib.suppress(OSError):  # past net.core.wmem_max, when allowed
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SEND_BUFFER_BYTES)


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc} ({name})" if name else str(exc)


class UdpOutput(Output):
    """Sends each message as one datagram to ``config.host``:``config.port``, unicast or multicast.

    Options:

    - ``ttl``: hops the datagrams may take (1-255). Default: 1 for a multicast group, so a stream
      stays on the local network unless asked to go further; the system's default (64 on Linux)
      for unicast.
    - ``interface``: the local IPv4 address of the interface to send multicast from (default: the
      one the routing table picks for the group). It is also the datagrams' source address.
      Ignored for unicast, which follows the routing table.

    Multicast loopback stays on (the system default), so receivers on this host get the stream too.
    State: "connected" while started (there is no connection to wait for; "connecting" only while
    the system has no route to the destination); ``send_errors`` counts failed sends.
    """

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.settings = UdpSend.from_config(config)
        self.send_errors = 0
        self._sock: socket.socket | None = None
        self._connected = False
        self._retry_at = 0.0
        self._error_at: float | None = None
        # The input hands over the same buffer every time: its byte view is made once.
        self._source: object = None
        self._view: memoryview | None = None

    def start(self) -> None:
        self._sock = open_sender(self.settings)
        self._connect(self._sock)

    def _connect(self, sock: socket.socket) -> None:
        # A connected socket hears of ICMP errors (port unreachable) on its next send, and
        # sends without a route lookup per datagram.
        try:
            sock.connect((str(self.settings.host), self.settings.port))
        except OSError as exc:
            self._retry_at = time.monotonic() + RECONNECT_S
            self.stats.state = "connecting"
            self._failed(exc)
            return
        self._connected = True
        self.stats.connected(self.settings.destination)

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        sock = self._sock
        if sock is None or self._stop.is_set():
            return
        if not self._connected:
            if time.monotonic() < self._retry_at:
                self.stats.dropped_messages += 1
                return
            self._connect(sock)
            if not self._connected:
                self.stats.dropped_messages += 1
                return
        view = self._view
        if data is not self._source or view is None:
            view = memoryview(data).cast("B") if isinstance(data, ctypes.Array) else memoryview(data)
            self._source, self._view = data, view
        try:
            sock.send(view[:length])
        except OSError as exc:
            if exc.errno in _FULL:
                self.stats.dropped_messages += 1
            else:
                self._failed(exc)
            return
        self.stats.meter.add(length)
        if self._error_at is not None and time.monotonic() - self._error_at > REASON_HOLD_S:
            self._error_at = None
            self.stats.reason = ""

    def _failed(self, exc: OSError) -> None:
        self.send_errors += 1
        reason = _describe(exc)
        if reason != self.stats.reason:
            log.warning("%s: sending to %s: %s", self.config.name, self.settings.destination, reason)
        self.stats.reason = reason
        self._error_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._source = self._view = None
        self.stats.disconnected("stopped", "")

    def snapshot(self) -> dict[str, Any]:
        return {
            **super().snapshot(),
            "ttl": self.settings.ttl,
            "send_errors": self.send_errors,
        }
