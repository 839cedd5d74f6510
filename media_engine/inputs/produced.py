"""Inputs the gateway produces itself (the slate, a looped file): a muxer writes MPEG-TS into a
pacer, and a thread of the input's own sends each message when it falls due."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from media_engine.inputs.base import Input, Sink
from media_engine.remux import Pacer, describe_error, play_then_flush

log = logging.getLogger(__name__)


class Source(Protocol):
    def mux_next(self) -> bool: ...

    def close(self) -> None: ...


class ProducedInput(Input):
    _thread: threading.Thread | None = None

    def _play(self, sink: Sink, source: Source, pacer: Pacer, peer: str | None) -> None:
        self._sink = sink
        self.stats.connected(peer)
        self._thread = threading.Thread(target=self._run, args=(source, pacer), daemon=True, name=self.config.name)
        self._thread.start()

    def _run(self, source: Source, pacer: Pacer) -> None:
        try:
            play_then_flush(source.mux_next, pacer, self._send, self._stop, self.config.name, source.close)
        except Exception as exc:
            log.exception("%s: stopped producing", self.config.name)
            self.stats.disconnected("failed", describe_error(exc))
        finally:
            source.close()

    def _send(self, message: bytes) -> None:
        self.deliver(message, len(message))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.stats.disconnected("stopped", "")
