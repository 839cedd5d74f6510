"""SRT outputs: caller/rendezvous (reconnects with backoff) and listener (any number of readers).

Sends never block: libsrt's send buffer is the output's bounded queue. When it is full the message
is dropped for this output alone and counted; a broken connection is closed and redialled from the
output's own thread while the input keeps feeding the others.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Any

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig, SrtSettings
from media_engine.outputs.base import Output
from media_engine.srt import errors
from media_engine.srt.configure import apply_accepted
from media_engine.srt.errors import SrtError
from media_engine.srt.hub import ListenerHub, Registration
from media_engine.srt.link import dial, link_snapshot
from media_engine.srt.socket import Address, SrtSocket
from media_engine.stats import RateMeter

log = logging.getLogger(__name__)


class SrtOutput(Output):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        if config.srt is None:
            raise ValueError(f"output {config.name!r} has no SRT settings")
        self.settings: SrtSettings = config.srt


class SrtDialOutput(SrtOutput):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._current: SrtSocket | None = None
        self._broken = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.config.name)
        self._thread.start()

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        sock = self._current
        if sock is None:
            return
        try:
            sock.send(data, length)
        except SrtError as exc:
            if exc.code == errors.EASYNCSND:
                self.stats.dropped_messages += 1
                return
            self._current = None
            self.stats.reason = errors.lost_connection_reason(exc)
            self._broken.set()
            return
        self.stats.meter.add(length)

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            self.stats.state = "connecting"
            try:
                sock = dial(self.settings, sender=True, stop=self._stop)
            except SrtError as exc:
                self.stats.reason = str(exc)
                if not backoff.wait(self._stop):
                    break
                continue
            self._broken.clear()
            self.stats.connected(str(sock.peer() or Address(self.settings.host, self.settings.port)))
            self._current = sock
            backoff.reset()
            while not self._stop.is_set() and not self._broken.wait(0.5):
                # A peer that vanished without a word is noticed by libsrt's idle timeout.
                if sock.state.name in ("BROKEN", "CLOSED", "NONEXIST"):
                    self.stats.reason = f"connection {sock.state.name.lower()}"
                    break
            self._current = None
            reason = self.stats.reason
            sock.close()
            if self._stop.is_set():
                break
            log.warning(
                "%s: connection to %s lost (%s); redialling", self.config.name, self.settings.describe(), reason
            )
            self.stats.disconnected("connecting", reason)
            if not backoff.wait(self._stop):
                break
        self.stats.disconnected("stopped", "")

    def stop(self) -> None:
        self._stop.set()
        self._broken.set()
        current = self._current
        if current is not None:
            current.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), **link_snapshot(self._current)}


class _Reader:
    __slots__ = ("meter", "peer", "since", "sock")

    def __init__(self, sock: SrtSocket, peer: Address | None) -> None:
        self.sock = sock
        self.peer = peer
        self.since = time.monotonic()
        self.meter = RateMeter()


class SrtListenerOutput(SrtOutput):
    """Players and downstream callers connect and pull; each reader is sent to and counted alone."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._readers: tuple[_Reader, ...] = ()
        self._lock = threading.Lock()
        self._hub: ListenerHub | None = None
        self.dropped_readers = 0

    def start(self) -> None:
        registration = Registration(
            streamid=self.settings.streamid,
            handler=self._add_reader,
            passphrase=self.settings.passphrase,
            pbkeylen=self.settings.pbkeylen,
            latency_ms=self.settings.latency_ms,
        )
        self._hub = ListenerHub.acquire(self.settings.host or "0.0.0.0", self.settings.port, registration)
        self.stats.state = "listening"

    def _add_reader(self, sock: SrtSocket, peer: Address | None) -> None:
        apply_accepted(sock, sender=True)
        with self._lock:
            self._readers = (*self._readers, _Reader(sock, peer))
            self.stats.connects += 1
        self.stats.state = "connected"
        log.info("%s: reader connected from %s", self.config.name, peer)

    def _drop_reader(self, reader: _Reader, why: str) -> None:
        with self._lock:
            self._readers = tuple(r for r in self._readers if r is not reader)
            self.stats.disconnects += 1
            self.dropped_readers += 1
            if not self._readers:
                self.stats.state = "listening"
        reader.sock.close()
        log.info("%s: reader %s gone: %s", self.config.name, reader.peer, why)

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        readers = self._readers
        if not readers:
            return
        for reader in readers:
            try:
                reader.sock.send(data, length)
            except SrtError as exc:
                if exc.code == errors.EASYNCSND:
                    self.stats.dropped_messages += 1
                else:
                    self._drop_reader(reader, errors.lost_connection_reason(exc))
                continue
            reader.meter.add(length)
        self.stats.meter.add(length)

    def stop(self) -> None:
        self._stop.set()
        if self._hub is not None:
            self._hub.release(self.settings.streamid)
        with self._lock:
            readers, self._readers = self._readers, ()
        for reader in readers:
            reader.sock.close()
        self.stats.disconnected("stopped", "")

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        readers = []
        for reader in self._readers:
            readers.append(
                {
                    "peer": str(reader.peer),
                    "uptime_s": round(now - reader.since, 1),
                    "bytes": reader.meter.bytes,
                    **reader.meter.bitrates(now),
                    **link_snapshot(reader.sock),
                }
            )
        return {**super().snapshot(), "readers": readers, "dropped_readers": self.dropped_readers}
