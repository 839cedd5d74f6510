"""The slate as an input kind: builds the clip at start and sends it, looped and paced, from a
thread of its own. How the slate is drawn, encoded, looped and paced is in media_engine.slate."""

from __future__ import annotations

import logging
import threading
import time

import av

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input, Sink
from media_engine.slate.clip import encode_clip
from media_engine.slate.loop import LoopMuxer
from media_engine.slate.pacing import Pacer
from media_engine.slate.settings import SlateSettings

log = logging.getLogger(__name__)

# Behind schedule by more than this (a stalled machine), the stream carries on from now instead
# of catching up in a burst that a receiver's buffer could not take.
MAX_LATE_S = 1.0


class SlateInput(Input):
    """Bars and tone as an input of the route's lowest priority. Options (all optional): width and
    height (1280x720), fps (25), tone_hz (1000; 0 for silence) and text to show over the bars."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.settings = SlateSettings.from_options(config.options)
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._sink = sink
        clip = encode_clip(self.settings)
        pacer = Pacer()
        try:
            muxer = LoopMuxer(clip, self.config.name, pacer)
        except av.FFmpegError as exc:
            raise ValueError(f"cannot build the slate: the MPEG-TS muxer failed: {exc}") from exc
        self.stats.connected(None)
        self._thread = threading.Thread(target=self._run, args=(muxer, pacer), daemon=True, name=self.config.name)
        self._thread.start()

    def _run(self, muxer: LoopMuxer, pacer: Pacer) -> None:
        try:
            self._play(muxer, pacer)
            # Closing writes out what the muxer still holds (the audio it gathers into longer PES
            # packets), so the stream ends on whole frames; that tail goes out at once.
            muxer.close()
            for message in pacer.drain():
                self.deliver(message, len(message))
        except Exception as exc:
            log.exception("%s: the slate stopped", self.config.name)
            self.stats.disconnected("failed", str(exc))
        finally:
            muxer.close()

    def _play(self, muxer: LoopMuxer, pacer: Pacer) -> None:
        origin = time.monotonic()  # when stream time 0 is due
        muxed = 0
        while not self._stop.is_set():
            due = pacer.next_due()
            if due is None:
                muxer.mux_next()
                muxed += 1
                if muxed > 10_000:
                    raise RuntimeError("the muxer wrote no PCR")
                continue
            muxed = 0
            late = time.monotonic() - (origin + due)
            if late < 0:
                self._stop.wait(-late)
                continue
            if late > MAX_LATE_S:
                log.warning("%s: %.1f s behind, carrying on from now", self.config.name, late)
                origin += late
            message = pacer.take()
            self.deliver(message, len(message))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.stats.disconnected("stopped", "")
