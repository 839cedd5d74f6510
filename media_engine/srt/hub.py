"""One SRT listening port shared by many streams, told apart by stream ID.

Each port has one hub: a listener socket, a listen callback that admits or rejects a caller during
the handshake (unknown stream ID, wrong passphrase), and an accept thread that hands each accepted
connection to the input or output registered for its stream ID.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from media_engine.srt import errors, library
from media_engine.srt.errors import SrtClosed, SrtError
from media_engine.srt.socket import Address, Opt, SrtSocket

log = logging.getLogger(__name__)

Handler = Callable[[SrtSocket, Address | None], None]
_REJECTED = re.compile(r"@(\d+):newConnection: connection rejected due to: (.+)")


@dataclass
class Registration:
    streamid: str
    handler: Handler
    passphrase: str = ""
    pbkeylen: int = 16
    latency_ms: int = 120
    rejections: int = 0
    last_rejection: str = ""
    on_reject: Callable[[str], None] | None = None


@dataclass
class _Pending:
    streamid: str
    peer: Address | None
    since: float = field(default_factory=time.monotonic)


class ListenerHub:
    """Owns the listening socket of one (host, port). Get one with ``ListenerHub.acquire``."""

    _hubs: dict[tuple[str, int], ListenerHub] = {}
    _hubs_lock = threading.Lock()

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._routes: dict[str, Registration] = {}
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self.rejected_unknown = 0
        self._sock = SrtSocket()
        self._sock.set(Opt.PAYLOADSIZE, 1316)
        self._sock.on_connect_request(self._admit)
        self._sock.bind(host, port)
        self._sock.listen(64)
        _RejectionWatch.add(self)
        self._thread = threading.Thread(target=self._accept_loop, name=f"srt-listen-{port}", daemon=True)
        self._thread.start()

    # registry of hubs

    @classmethod
    def acquire(cls, host: str, port: int, registration: Registration) -> ListenerHub:
        """Register a stream ID on the hub of (host, port), opening the port if needed."""
        with cls._hubs_lock:
            hub = cls._hubs.get((host, port))
            if hub is None:
                hub = cls(host, port)
                cls._hubs[(host, port)] = hub
            hub._register(registration)
            return hub

    def release(self, streamid: str) -> None:
        """Unregister; the port closes when its last stream ID is gone."""
        with ListenerHub._hubs_lock:
            with self._lock:
                self._routes.pop(streamid, None)
                empty = not self._routes
            if empty:
                ListenerHub._hubs.pop((self.host, self.port), None)
                _RejectionWatch.remove(self)
                self._sock.close()
                self._thread.join(timeout=5)

    def _register(self, registration: Registration) -> None:
        with self._lock:
            if registration.streamid in self._routes:
                raise SrtError(
                    f"stream ID {registration.streamid!r} is already served on port {self.port}",
                    reject_reason=errors.REJX_CONFLICT,
                )
            self._routes[registration.streamid] = registration

    # handshake and accept

    def _admit(self, sock: SrtSocket, streamid: str, peer: Address | None) -> int | None:
        with self._lock:
            registration = self._routes.get(streamid)
        if registration is None:
            self.rejected_unknown += 1
            log.warning("port %s: rejected %s: unknown stream ID %r", self.port, peer, streamid)
            return errors.REJX_NOTFOUND
        if registration.passphrase:
            sock.set(Opt.PASSPHRASE, registration.passphrase)
            sock.set(Opt.PBKEYLEN, registration.pbkeylen)
        sock.set(Opt.RCVLATENCY, registration.latency_ms)
        sock.set(Opt.PEERLATENCY, registration.latency_ms)
        with self._lock:
            self._pending[sock.handle] = _Pending(streamid, peer)
        return None

    def _accept_loop(self) -> None:
        while not self._sock.closed:
            try:
                sock, peer = self._sock.accept()
            except SrtClosed:
                return
            except SrtError as exc:
                if self._sock.closed:
                    return
                log.warning("port %s: accept failed: %s", self.port, exc)
                time.sleep(0.05)
                continue
            streamid = sock.get_str(Opt.STREAMID)
            with self._lock:
                self._pending.pop(sock.handle, None)
                registration = self._routes.get(streamid)
            if registration is None:  # unregistered between handshake and accept
                sock.close()
                continue
            try:
                registration.handler(sock, peer)
            except Exception:
                log.exception("port %s: handing over %r failed", self.port, streamid)
                sock.close()

    def rejected(self, handle: int, reason: str) -> bool:
        """libsrt refused a handshake this hub had admitted (wrong passphrase, ...): record why."""
        with self._lock:
            pending = self._pending.pop(handle, None)
            registration = self._routes.get(pending.streamid) if pending else None
        if pending is None:
            return False
        message = f"rejected {pending.peer}: {reason}"
        log.warning("port %s stream ID %r: %s", self.port, pending.streamid, message)
        if registration is not None:
            registration.rejections += 1
            registration.last_rejection = message
            if registration.on_reject is not None:
                registration.on_reject(message)
        return True


class _RejectionWatch(logging.Handler):
    """libsrt reports a failed handshake (e.g. a wrong passphrase) only in its log; read it there."""

    _hubs: set[ListenerHub] = set()
    _installed = False

    @classmethod
    def add(cls, hub: ListenerHub) -> None:
        cls._hubs.add(hub)
        if not cls._installed:
            library.log.addHandler(cls(level=logging.WARNING))
            if library.log.getEffectiveLevel() > logging.WARNING:
                library.log.setLevel(logging.WARNING)
                library.sync_log_level()
            cls._installed = True

    @classmethod
    def remove(cls, hub: ListenerHub) -> None:
        cls._hubs.discard(hub)

    def emit(self, record: logging.LogRecord) -> None:
        match = _REJECTED.search(record.getMessage())
        if match:
            handle, reason = int(match.group(1)), match.group(2).replace("INTERNAL REJECTION - ERROR:", "")
            for hub in list(self._hubs):
                if hub.rejected(handle, reason):
                    return
