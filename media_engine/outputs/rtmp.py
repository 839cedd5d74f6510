"""RTMP and RTMPS push output: the route's stream, as FLV, to a platform or a server (YouTube, Twitch,
Facebook, a CDN, nginx-rtmp).

``offer`` only queues the relay's MPEG-TS messages (bounded: when full, the message is dropped and
counted). A thread of the output's own remuxes them to FLV tags (media_engine.rtmp.ts_to_flv) and
publishes the tags with our own RTMP client (media_engine.rtmp.client, which says why it is not
FFmpeg's). When the server refuses the stream or drops the connection, it connects again with
backoff; every connection starts on a video keyframe, with timestamps from zero.

URL: ``rtmp://host[:port]/app/stream-key`` (or ``rtmps://``, port 443 unless given), or the URL
without the key plus the option ``stream_key``, as platforms give them ("server" and "stream key");
the app is then the URL's whole path. Options: ``stream_key``; ``timeout_ms`` (10000): connecting,
each answer from the server and each write may take this long; ``tls_verify`` ("0" accepts any
certificate); ``queue_kb`` (4096): what may wait to be sent.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

import av

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig
from media_engine.options import int_option
from media_engine.outputs.base import Output
from media_engine.remux import Timeline, describe_error
from media_engine.rtmp.client import UNPUBLISH_WAIT_S, RtmpError, RtmpPublisher, RtmpTarget
from media_engine.rtmp.remux import BytePipe
from media_engine.rtmp.ts_to_flv import TsToFlv, Unsuitable, first_packets, open_ts, pick_streams

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_QUEUE_KB = 4096
# Packets only of streams we do not send for this long: the stream's layout changed (another input
# with other PIDs went on air), so the connection starts again on the new one.
_STARVED_S = 5.0


class RtmpOutput(Output):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        try:
            self.target = RtmpTarget.parse(config.url, config.options.get("stream_key", ""))
        except ValueError as exc:
            raise ValueError(f"output {config.name!r}: {exc}") from None
        self.timeout_s = int_option(config, "timeout_ms", DEFAULT_TIMEOUT_MS, minimum=1000, maximum=120_000) / 1000
        self.queue_bytes = int_option(config, "queue_kb", DEFAULT_QUEUE_KB, minimum=64, maximum=1024 * 1024) * 1024
        self.verify_tls = config.options.get("tls_verify", "1").strip().lower() not in ("0", "false", "no", "off")
        self._pipe: BytePipe | None = None
        self._publisher: RtmpPublisher | None = None
        self._thread: threading.Thread | None = None
        self._timeline: Timeline | None = None
        self._past_discontinuities = 0  # timestamp jumps offset away on earlier connections

    def start(self) -> None:
        self.stats.state = "connecting"
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.config.name)
        self._thread.start()

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        pipe = self._pipe
        if pipe is None:
            return  # between connections: nothing would send it
        if not pipe.write(bytes(memoryview(data)[:length])):
            self.stats.dropped_messages += 1

    def _run(self) -> None:
        backoff = Backoff(first=1.0, longest=15.0)
        while not self._stop.is_set():
            pipe = BytePipe(limit=self.queue_bytes)
            self._pipe = pipe
            if self._stop.is_set():  # stop() may have looked before the pipe was there
                pipe.abort()
            try:
                reason = self._connection(pipe)
            except Exception as exc:
                log.exception("%s: publishing to %s failed", self.config.name, self.target.describe())
                reason = describe_error(exc)
            finally:
                self._pipe = None
                pipe.abort()
            if self._stop.is_set():
                break
            if self.stats.state == "connected":
                log.warning("%s: %s lost (%s); reconnecting", self.config.name, self.target.describe(), reason)
                self.stats.disconnected("connecting", reason)
                backoff.reset()
            else:
                if reason != self.stats.reason:
                    log.info("%s: cannot publish to %s: %s", self.config.name, self.target.describe(), reason)
                self.stats.reason = reason
            if not backoff.wait(self._stop):
                break

    def _connection(self, pipe: BytePipe) -> str:
        """Read the stream, publish it until something fails; returns what."""
        try:
            source = open_ts(pipe)
        except av.FFmpegError as exc:
            return "stopped" if self._stop.is_set() else f"cannot read the stream: {describe_error(exc)}"
        with source:
            try:
                video, audio = pick_streams(source)
            except Unsuitable as exc:
                return str(exc)
            packets = source.demux()
            first, audio, config = first_packets(packets, video, audio, self.config.name)
            if not first:
                return "stopped" if self._stop.is_set() else "the stream ended"
            publisher = RtmpPublisher(self.target, self.timeout_s, self.verify_tls)
            self._publisher = publisher
            if self._stop.is_set():
                publisher.close()
            try:
                publisher.open()
                self.stats.connected(publisher.peer)
                log.info("%s: publishing to %s", self.config.name, self.target.describe())
                reason = self._publish(publisher, chain(first, packets), TsToFlv(video, audio, config))
                if self._stop.is_set():
                    publisher.unpublish()
                return reason
            except RtmpError as exc:
                return str(exc)
            finally:
                self._publisher = None
                publisher.close()

    def _publish(self, publisher: RtmpPublisher, packets: Iterator[Any], remux: TsToFlv) -> str:
        self._timeline = remux.timeline
        try:
            last_sent = time.monotonic()
            for packet in packets:
                if self._stop.is_set():
                    return "stopped"
                if not remux.carries(packet):
                    if time.monotonic() - last_sent > _STARVED_S:
                        return "the stream's layout changed"
                    continue
                if not remux.mux(packet):
                    continue
                last_sent = time.monotonic()
                while remux.tags:
                    self.stats.meter.add(publisher.send_tag(*remux.tags.popleft()))
            return "stopped" if self._stop.is_set() else "the stream ended"
        finally:
            self._past_discontinuities += remux.timeline.discontinuities
            self._timeline = None
            remux.close()

    def stop(self) -> None:
        self._stop.set()
        pipe = self._pipe
        if pipe is not None:
            pipe.abort()  # the thread's demuxer sees the end of the stream and it unpublishes
        if self._thread is not None and self.stats.state == "connected":
            self._thread.join(timeout=UNPUBLISH_WAIT_S)
        publisher = self._publisher
        if publisher is not None:
            publisher.close()  # still busy (connecting, or a write the server does not take)
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
        self.stats.disconnected("stopped", "")

    @property
    def discontinuities(self) -> int:
        """Timestamp jumps offset away so far, on every connection."""
        timeline = self._timeline
        return self._past_discontinuities + (timeline.discontinuities if timeline is not None else 0)

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "target": self.target.describe(), "discontinuities": self.discontinuities}
