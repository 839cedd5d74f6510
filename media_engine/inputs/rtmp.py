"""RTMP input: an encoder (OBS, ffmpeg, a hardware encoder) publishes to
``rtmp://gateway:<port>/<app>/<stream key>``; its FLV is remuxed to MPEG-TS for the relay."""

from __future__ import annotations

import logging
import threading
from typing import Any

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input, Sink
from media_engine.rtmp.connection import Connection
from media_engine.rtmp.remux import FlvToTs, TsStream
from media_engine.rtmp.server import DEFAULT_PORT, RtmpServer, mask
from media_engine.rtmp.server import Registration as RtmpRegistration

log = logging.getLogger(__name__)

DEFAULT_APP = "live"
# How long a replaced publication may take to stop before the new one starts anyway.
_REPLACE_WAIT_S = 2.0


class RtmpInput(Input):
    """Waits for a publisher on a port it may share with other inputs (told apart by app and stream
    key). Settings: config.host (bind address, "" for all), config.port (1935 when 0), options
    "app" (default "live") and "stream_key" (required). A new publisher for the same key replaces
    the current one at once, so a restarted encoder is never told "busy"."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        # Every spelling of "all addresses" shares one server (and one socket) per port.
        self.host = "" if config.host in ("", "0.0.0.0", "::") else config.host
        self.port = config.port or DEFAULT_PORT
        self.app = config.options.get("app", "").strip("/") or DEFAULT_APP
        self.stream_key = config.options.get("stream_key", "")
        if not self.stream_key:
            raise ValueError(f"input {config.name!r}: an RTMP input needs the stream key the encoder publishes with")
        self.server: RtmpServer | None = None
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._remuxer: FlvToTs | None = None
        # One MPEG-TS across publishers: a reconnecting encoder continues it rather than restarting it.
        self.ts_stream = TsStream(config.name, self._deliver_message)

    def start(self, sink: Sink) -> None:
        self._sink = sink
        registration = RtmpRegistration(app=self.app, stream_key=self.stream_key, handler=self._take)
        self.server = RtmpServer.acquire(self.host, self.port, registration)
        self.stats.state = "listening"
        log.info(
            "%s: waiting for rtmp://%s:%s/%s/%s",
            self.config.name,
            self.host or "*",
            self.port,
            self.app,
            mask(self.stream_key),
        )

    def _take(self, connection: Connection) -> FlvToTs:
        """A publisher for our key (called in its connection's thread)."""
        remuxer = FlvToTs(self.config.name, self.ts_stream, on_done=lambda reason: self._ended(remuxer, reason))
        with self._lock:
            if self._stop.is_set():
                connection.close("the input is stopping")
                remuxer.abort("stopped")
                return remuxer
            previous, previous_remuxer = self._connection, self._remuxer
            self._connection, self._remuxer = connection, remuxer
        if previous is not None:
            log.info("%s: new publisher %s replaces %s", self.config.name, connection.peer, previous.peer)
            previous.close(f"replaced by a new publisher from {connection.peer}")
        if previous_remuxer is not None:
            # The old publication stops muxing before the new one starts: they must not interleave.
            previous_remuxer.abort(f"replaced by a new publisher from {connection.peer}")
            if not previous_remuxer.join(_REPLACE_WAIT_S):
                log.warning("%s: the replaced publication is slow to stop", self.config.name)
        self.stats.connected(connection.peer)
        log.info("%s: publishing from %s", self.config.name, connection.peer)
        remuxer.start()
        return remuxer

    def _deliver_message(self, message: bytes) -> None:
        self.deliver(message, len(message))

    def _ended(self, remuxer: FlvToTs, reason: str) -> None:
        with self._lock:
            if self._remuxer is not remuxer:
                return  # replaced: the newer publication owns the state
            self._remuxer = None
            self._connection = None
            if self._stop.is_set():
                return
            self.stats.disconnected("listening", reason or "the publisher left")
        log.info("%s: publisher gone: %s", self.config.name, reason)

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            # Closes the port, and every connection on it, when ours was the last registration.
            self.server.release((self.app, self.stream_key))
        with self._lock:
            connection, remuxer = self._connection, self._remuxer
        if connection is not None:
            connection.close("the input stopped")
            connection.join(timeout=5)
        if remuxer is not None:
            remuxer.abort("stopped")
            remuxer.join(timeout=5)
        self.ts_stream.close()
        self.stats.disconnected("stopped", "")

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "app": self.app, "port": self.port}
