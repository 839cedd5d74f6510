"""SRT inputs: listener (many stream IDs on one port), caller and rendezvous (reconnect with backoff)."""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig, SrtSettings
from media_engine.inputs.base import Input, Sink
from media_engine.srt.errors import SrtError
from media_engine.srt.hub import ListenerHub, Registration
from media_engine.srt.link import dial, link_snapshot
from media_engine.srt.socket import Address, SrtSocket

log = logging.getLogger(__name__)
_MESSAGE_BUFFER = 1500


class SrtInput(Input):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        if config.srt is None:
            raise ValueError(f"input {config.name!r} has no SRT settings")
        self.settings: SrtSettings = config.srt
        self._current: SrtSocket | None = None
        self._last_link: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _pump(self, sock: SrtSocket, peer: Address | None) -> str:
        """Read until the connection ends; returns why it ended."""
        buffer = ctypes.create_string_buffer(_MESSAGE_BUFFER)
        view = memoryview(buffer).cast("B")
        self.stats.connected(str(peer) if peer else None)
        log.info("%s: connected from %s", self.config.name, peer)
        try:
            while True:
                length = sock.recv_into(buffer)
                if length > 0:
                    self.deliver(buffer, length, view)
        except SrtError as exc:
            return "stopped" if self._stop.is_set() else str(exc)
        finally:
            sock.close()

    def snapshot(self) -> dict[str, Any]:
        # The link's last figures (loss, RTT) stay visible after it drops: they often say why.
        self._last_link = link_snapshot(self._current) or self._last_link
        return {**super().snapshot(), **self._last_link}


class SrtListenerInput(SrtInput):
    """Waits for an encoder on a port it may share with other stream IDs. A new connection for the
    same stream ID replaces the old one at once, so a restarted encoder is never told "busy"."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._hub: ListenerHub | None = None
        self._reader: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._sink = sink
        registration = Registration(
            streamid=self.settings.streamid,
            handler=self._take,
            passphrase=self.settings.passphrase,
            pbkeylen=self.settings.pbkeylen,
            latency_ms=self.settings.latency_ms,
            on_reject=self._rejected,
        )
        self._hub = ListenerHub.acquire(self.settings.host or "0.0.0.0", self.settings.port, registration)
        self.stats.state = "listening"

    def _rejected(self, message: str) -> None:
        if self.stats.state != "connected":
            self.stats.reason = message

    def _take(self, sock: SrtSocket, peer: Address | None) -> None:
        with self._lock:
            previous, previous_reader = self._current, self._reader
            self._current = sock
            reader = threading.Thread(target=self._serve, args=(sock, peer), daemon=True, name=self.config.name)
            self._reader = reader
        if previous is not None:
            log.info("%s: new connection from %s replaces the previous one", self.config.name, peer)
            previous.close()
            if previous_reader is not None:
                previous_reader.join(timeout=2)
        reader.start()

    def _serve(self, sock: SrtSocket, peer: Address | None) -> None:
        why = self._pump(sock, peer)
        with self._lock:
            if self._current is sock:
                self._current = None
                self.stats.disconnected("listening", why)

    def stop(self) -> None:
        self._stop.set()
        if self._hub is not None:
            self._hub.release(self.settings.streamid)
        with self._lock:
            current, reader = self._current, self._reader
        if current is not None:
            current.close()
        if reader is not None:
            reader.join(timeout=5)
        self.stats.disconnected("stopped", "")


class SrtDialInput(SrtInput):
    """Calls the encoder (caller) or meets it (rendezvous); reconnects with backoff until stopped."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.config.name)
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            self.stats.state = "connecting"
            try:
                sock = dial(self.settings, sender=False, stop=self._stop)
            except SrtError as exc:
                if self._stop.is_set():
                    break
                self.stats.reason = str(exc)
                backoff.wait(self._stop)
                continue
            with self._lock:
                self._current = sock
            if self._stop.is_set():
                sock.close()
                break
            backoff.reset()
            # libsrt 1.5 reports no peer name for rendezvous sockets; the configured peer is the one.
            why = self._pump(sock, sock.peer() or Address(self.settings.host, self.settings.port))
            with self._lock:
                self._current = None
            self.stats.disconnected("connecting", why)
            if not self._stop.is_set():
                backoff.wait(self._stop)
        self.stats.disconnected("stopped", "")

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            current = self._current
        if current is not None:
            current.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
