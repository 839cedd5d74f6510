"""An output that re-encodes the route's stream before sending it on.

It wraps the output(s) the protocol would have had anyway (SRT, UDP, RTMP, HLS, file): the relay
offers it the active input's messages, which are only copied into a bounded queue; a thread of
its own runs a ``Transcoder`` over that queue, and each rendition's messages are offered to its
inner output, which sends or writes them as it would a passed-through stream. A transcoder that
cannot keep up drops input here, counted and shown as ``behind``, and never slows the relay.

The encoders are chosen at ``start``: a rendition asking for one this node lacks fails the route
at once, saying so. A transcoder that dies later leaves this output ``failed`` with the reason,
while the route's other outputs go on.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig
from media_engine.outputs.base import Output
from media_engine.remux import describe_error
from media_engine.transcoder import ladder
from media_engine.transcoder.encoders import Encoder, EncoderUnavailable
from media_engine.transcoder.feed import QUEUE_MESSAGES, MessageQueue
from media_engine.transcoder.pipeline import Transcoder, choose_encoders
from media_engine.transcoder.stats import RenditionStats, TranscodeStats

log = logging.getLogger(__name__)

STOP_WAIT_S = 15.0
RESTART_MAX_S = 10.0
IDLE = TranscodeStats([RenditionStats("")]).snapshot()

Build = Callable[[EndpointConfig], Output]


class TranscodingOutput(Output):
    def __init__(self, config: EndpointConfig, build: Build, *, queue_messages: int = QUEUE_MESSAGES) -> None:
        """``build``: makes the inner, protocol output of a configuration without renditions."""
        super().__init__(config)
        renditions = config.transcode
        if not renditions:
            raise ValueError(f'output "{config.name}": no rendition to transcode into')
        self.ladder = len(renditions) > 1
        if self.ladder and config.protocol != "hls":
            raise ValueError(
                f'output "{config.name}": only HLS outputs take several renditions (an adaptive-bitrate '
                f"ladder); a {config.protocol} output takes one"
            )
        if any(settings.video_codec == "copy" for settings in renditions):
            raise ValueError(f'output "{config.name}": a rendition must encode video (h264 or hevc), not copy it')
        inner_configs = ladder.rendition_configs(config) if self.ladder else [replace(config, transcode=())]
        self.inner: list[Output] = [build(inner) for inner in inner_configs]
        self.queue = MessageQueue(queue_messages)
        self.transcoder: Transcoder | None = None
        self._thread: threading.Thread | None = None
        self._chosen: list[Encoder] = []
        self._failure = ""  # why the last transcoder failed, until its successor encodes
        self.restarts = 0

    # the relay's calls

    def start(self) -> None:
        try:
            self._chosen = choose_encoders(self.config.transcode)
        except EncoderUnavailable as exc:
            raise EncoderUnavailable(f'output "{self.config.name}": {exc}') from None
        self.transcoder = self._new_transcoder()
        started: list[Output] = []
        try:
            for inner in self.inner:
                inner.start()
                started.append(inner)
        except Exception:
            for inner in reversed(started):
                inner.stop()
            raise
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{self.config.name} transcoder")
        self._thread.start()

    def _new_transcoder(self) -> Transcoder:
        return Transcoder(
            self.queue,
            self.config.transcode,
            [self._sink(inner) for inner in self.inner],
            self.config.name,
            chosen=self._chosen,
            on_ready=self._write_master if self.ladder else None,
        )

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        if not self.queue.offer(data, length) and not self.queue.closed:
            self.stats.dropped_messages += 1

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            if self._thread.is_alive():
                log.warning("%s: the transcoder did not stop within %g s", self.config.name, STOP_WAIT_S)
        for inner in self.inner:
            inner.stop()

    # the transcoder's thread

    @staticmethod
    def _sink(inner: Output) -> Callable[[bytes], None]:
        def offer(message: bytes) -> None:
            inner.offer(message, len(message))

        return offer

    def _run(self) -> None:
        # A 24/7 output heals itself: after a failure (an input it cannot decode, say) a fresh
        # transcoder takes the stream from where it is now, after a growing pause.
        backoff = Backoff(first=1.0, longest=RESTART_MAX_S)
        try:
            while True:
                transcoder = self.transcoder
                assert transcoder is not None
                try:
                    transcoder.run(self._stop)
                    return  # the queue was closed: the output is stopping
                except Exception as exc:
                    if self._stop.is_set():
                        log.debug("%s: transcoder ended while stopping: %s", self.config.name, exc)
                        return
                    self._failure = f"transcoder failed: {describe_error(exc)}"
                    log.exception("%s: %s; restarting it", self.config.name, self._failure)
                    self.stats.disconnected("failed", self._failure)
                if transcoder.stats.frames:
                    backoff.reset()
                if not backoff.wait(self._stop):
                    return
                self.restarts += 1
                self.transcoder = self._new_transcoder()
        finally:
            # Nothing reads the queue any more: later offers are refused at once.
            self.queue.close()

    def _write_master(self, transcoder: Transcoder) -> None:
        names = ladder.directory_names(self.config.transcode)
        variants = [
            ladder.Variant(f"{name}/{ladder.MASTER}", rendition.settings, rendition.size, rendition.fps)
            for name, rendition in zip(names, transcoder.renditions, strict=True)
            if rendition.size is not None and rendition.fps is not None
        ]
        try:
            ladder.write_master(ladder.output_directory(self.config), variants)
        except OSError as exc:
            # The renditions are still written; a player given a variant playlist plays it.
            log.warning("%s: writing the master playlist failed: %s", self.config.name, exc)

    # reading

    @property
    def transcode_stats(self) -> TranscodeStats | None:
        return self.transcoder.stats if self.transcoder is not None else None

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        data = {**self.inner[0].snapshot(), "id": self.config.id, "name": self.config.name}
        data["dropped_messages"] = data.get("dropped_messages", 0) + self.stats.dropped_messages
        stats = self.transcode_stats
        if self._failure and (stats is None or not stats.frames):
            data["state"], data["reason"] = "failed", self._failure
        data["transcoder_restarts"] = self.restarts
        if stats is None:  # not started: nothing encoded yet
            data["transcode"] = {**IDLE, "encoder": ""}
            return data
        stats.behind.update(now, self.queue.waited_s(now), self.queue.overflows)
        data["transcode"] = stats.snapshot(now)
        if self.ladder:
            data["renditions"] = [
                {**inner.snapshot(), "rendition": settings.name, "transcode": stats.rendition_snapshot(index, now)}
                for index, (inner, settings) in enumerate(zip(self.inner, self.config.transcode, strict=True))
            ]
        return data
