"""One RTMP listening port shared by many inputs, each registered for an (app, stream key).

Like the SRT listener hub: ``RtmpServer.acquire`` registers on the server of (host, port), opening
the port for the first registration; ``release`` unregisters, and the last release closes the port
and every connection still on it. Each accepted connection is served in a thread of its own; at
publish time its app and stream key pick the registration, and a publisher nobody registered for is
refused (NetStream.Publish.BadName), logged and counted here, without any input hearing of it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from media_engine.rtmp.connection import POLL_S, Connection, Publication

log = logging.getLogger(__name__)

DEFAULT_PORT = 1935
# Connections still in the handshake or in their first commands; beyond this, new ones are turned
# away at once so a flood cannot starve the port of threads.
MAX_CONNECTIONS = 256
RECENT_REFUSALS = 50

Key = tuple[str, str]  # (app, stream key)


class RtmpServerError(ValueError):
    """A registration this server cannot take (the app and key already served, the port taken)."""


@dataclass
class Registration:
    app: str
    stream_key: str
    # Called in the publisher's connection thread once it asks to publish; what it returns gets the
    # publisher's tags. A publisher replacing another for the same key calls it again.
    handler: Callable[[Connection], Publication]

    @property
    def key(self) -> Key:
        return (self.app, self.stream_key)


@dataclass(frozen=True)
class Refusal:
    peer: str
    app: str
    stream_key: str  # masked: a near-miss of a real key is nearly a secret
    at: float  # time.time()


def mask(stream_key: str) -> str:
    """Enough of a stream key to recognise it in a log, not enough to use it."""
    if len(stream_key) <= 6:
        return "*" * len(stream_key)
    return f"{stream_key[:3]}…({len(stream_key)} characters)"


def peer_name(address: tuple) -> str:
    """How a peer is shown in the status and in logs."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:"):  # an IPv4 peer on a dual-stack socket
        host = host[len("::ffff:") :]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listening_socket(host: str, port: int) -> socket.socket:
    if host in ("", "::") and socket.has_dualstack_ipv6():
        sock = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=64)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host or "0.0.0.0", port), family=family, backlog=64)
    sock.settimeout(POLL_S)
    return sock


class RtmpServer:
    """Owns the listening socket of one (host, port). Get one with ``RtmpServer.acquire``."""

    _servers: dict[tuple[str, int], RtmpServer] = {}
    _servers_lock = threading.Lock()

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._routes: dict[Key, Registration] = {}
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self.refused = 0
        self.refusals: deque[Refusal] = deque(maxlen=RECENT_REFUSALS)
        # Called with each refusal, from the refused connection's thread (an API, a test).
        self.on_refusal: list[Callable[[Refusal], None]] = []
        try:
            self._sock = _listening_socket(host, port)
        except OSError as exc:
            raise RtmpServerError(f"cannot listen for RTMP on {host or '*'}:{port}: {exc}") from exc
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"rtmp-listen-{port}", daemon=True)
        self._thread.start()
        log.info("rtmp: listening on %s:%s", host or "*", port)

    # registry of servers

    @classmethod
    def acquire(cls, host: str, port: int, registration: Registration) -> RtmpServer:
        """Register an (app, stream key) on the server of (host, port), opening the port if needed."""
        with cls._servers_lock:
            server = cls._servers.get((host, port))
            if server is None:
                server = cls(host, port)
                cls._servers[(host, port)] = server
            server._register(registration)
            return server

    @classmethod
    def running(cls, host: str, port: int) -> RtmpServer | None:
        with cls._servers_lock:
            return cls._servers.get((host, port))

    def release(self, key: Key) -> None:
        """Unregister; the port and its remaining connections close with the last registration."""
        with RtmpServer._servers_lock:
            with self._lock:
                self._routes.pop(key, None)
                empty = not self._routes
            if empty:
                RtmpServer._servers.pop((self.host, self.port), None)
                self._shut()

    def _register(self, registration: Registration) -> None:
        with self._lock:
            if registration.key in self._routes:
                raise RtmpServerError(
                    f"RTMP app {registration.app!r} with this stream key is already served on port {self.port}"
                )
            self._routes[registration.key] = registration

    def _shut(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close("the RTMP port closed")
        for connection in connections:
            connection.join(timeout=5)
        log.info("rtmp: port %s closed", self.port)

    # connections

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, address = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._closed.is_set():
                    return
                log.warning("rtmp port %s: accept failed: %s", self.port, exc)
                time.sleep(0.05)
                continue
            peer = peer_name(address)
            with self._lock:
                crowded = len(self._connections) >= MAX_CONNECTIONS
                if not crowded:
                    connection = Connection(sock, peer, self, self.port)
                    self._connections.add(connection)
            if crowded:
                log.warning("rtmp port %s: turned %s away: %d connections open", self.port, peer, MAX_CONNECTIONS)
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.start()

    def take_publisher(self, connection: Connection) -> Publication | None:
        with self._lock:
            registration = self._routes.get((connection.app, connection.stream_key))
        if registration is None:
            self._refuse(connection)
            return None
        return registration.handler(connection)

    def _refuse(self, connection: Connection) -> None:
        refusal = Refusal(connection.peer, connection.app, mask(connection.stream_key), time.time())
        with self._lock:
            self.refused += 1
            self.refusals.append(refusal)
        log.warning(
            "rtmp port %s: refused %s: no input for app %r, stream key %s",
            self.port,
            connection.peer,
            connection.app,
            refusal.stream_key,
        )
        for callback in list(self.on_refusal):
            try:
                callback(refusal)
            except Exception:
                log.exception("rtmp port %s: a refusal callback failed", self.port)

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)
