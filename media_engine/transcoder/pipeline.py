"""The transcoder: MPEG-TS in, one MPEG-TS per rendition out, decoding the source once.

Entry point, also for running over a whole file as fast as the machine allows (the benchmark)::

    from media_engine.transcoder.pipeline import Transcoder

    transcoder = Transcoder(open(path, "rb"), renditions, sinks)
    transcoder.run()  # returns at the end of the input, or once ``stop`` (an Event) is set
    transcoder.stats.frames, transcoder.stats.elapsed_s, transcoder.stats.snapshot()

``source``: anything with ``read(n) -> bytes`` (b"" at the end). ``renditions``: TranscodeSettings;
``sinks``: one callable per rendition, given the rendition's MPEG-TS in messages of 1316 bytes
(7 TS packets; the very last may be shorter).

Every packet goes through one ``remux.Timeline`` first: a switch to another encoder, a restart or
a pause makes its timestamps jump, and the timeline keeps them continuous with audio and video
still in sync. Pictures are decoded once and every rendition scales, maps them onto its constant
frame rate and encodes them; audio is copied or re-encoded to AAC per rendition. A packet that
does not decode is counted and skipped: no input, however broken, stops the transcoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any, Protocol

import av

from media_engine.config import TranscodeSettings
from media_engine.remux import Timeline
from media_engine.transcoder import encoders
from media_engine.transcoder.encoders import Encoder
from media_engine.transcoder.rendition import Rendition, Start
from media_engine.transcoder.stats import RenditionStats, TranscodeStats

log = logging.getLogger(__name__)

# How much of the input the demuxer reads to learn its streams before the first packet: a live
# input waits this long at most, so it is kept well below libavformat's 5 s.
OPEN_OPTIONS = {"probesize": "2000000", "analyzeduration": "1500000"}
DEFAULT_FPS = Fraction(25)
# Audio that arrives before the first picture is decoded waits for it, up to this many packets.
HELD_AUDIO = 1000
# After a discontinuity, pictures are skipped until a keyframe, but no more than this many (a
# stream refreshed without keyframes has to be decoded as it comes).
MAX_SKIPPED_PICTURES = 300
# Demuxer errors in a row after which the input is taken as broken for good.
MAX_DEMUX_ERRORS = 100
WARN_EVERY = 100  # decode errors: the first one and then one in this many are logged


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def encoder_label(encoder: Encoder) -> str:
    return f"{encoder.codec_name} ({encoder.kind})"


def choose_encoders(renditions: Sequence[TranscodeSettings]) -> list[Encoder]:
    """Each rendition's encoder on this node; raises EncoderUnavailable."""
    kinds = encoders.available(encoders.node_probe())
    return [encoders.choose(settings.video_codec, settings.encoder, kinds) for settings in renditions]


def source_fps(stream: Any) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.codec_context.framerate):
        if rate and 0 < rate <= 240:
            return Fraction(rate)
    return DEFAULT_FPS


class Transcoder:
    def __init__(
        self,
        source: Source,
        renditions: Sequence[TranscodeSettings],
        sinks: Sequence[Callable[[bytes], None]],
        name: str = "",
        *,
        chosen: Sequence[Encoder] | None = None,
        on_ready: Callable[[Transcoder], None] | None = None,
    ) -> None:
        """``chosen``: the renditions' encoders when already chosen (see ``choose_encoders``);
        ``on_ready``: called once every rendition's size and rate are known, before any output."""
        if not renditions:
            raise ValueError("a transcoder needs at least one rendition")
        if len(sinks) != len(renditions):
            raise ValueError(f"{len(renditions)} renditions but {len(sinks)} sinks")
        if any(settings.video_codec == "copy" for settings in renditions):
            raise ValueError("a rendition that copies the video is not a transcode: pass the stream through")
        self.source = source
        self.name = name
        chosen = list(chosen) if chosen is not None else choose_encoders(renditions)
        self.stats = TranscodeStats(
            [
                RenditionStats(settings.name, encoder_label(encoder))
                for settings, encoder in zip(renditions, chosen, strict=True)
            ]
        )
        self.renditions = [
            Rendition(settings, encoder, sink, stats)
            for settings, encoder, sink, stats in zip(renditions, chosen, sinks, self.stats.renditions, strict=True)
        ]
        self.timeline = Timeline(max_gap_s=1.0)
        self.origin_s: Fraction | None = None
        self._on_ready = on_ready
        self._video: Any = None
        self._audio: Any = None
        self._fps = DEFAULT_FPS
        self._held: deque[av.Packet] = deque(maxlen=HELD_AUDIO)
        self._skip_to_keyframe = 0  # video packets still to skip while waiting for a keyframe
        self.skipped_packets = 0
        self._decode_audio = any(rendition.wants_decoded_audio for rendition in self.renditions)

    # running

    def run(self, stop: threading.Event | None = None) -> None:
        """Transcode until the source ends or ``stop`` is set, then flush every rendition."""
        self.stats.started_at = time.monotonic()
        self.stats.ended_at = None
        try:
            container = av.open(self.source, format="mpegts", options=OPEN_OPTIONS)
            try:
                self._transcode(container, stop)
                self._flush_video()
            finally:
                container.close()
        finally:
            try:
                for rendition in self.renditions:
                    rendition.close()
            finally:
                self.stats.ended_at = time.monotonic()

    def _transcode(self, container: Any, stop: threading.Event | None) -> None:
        video = next(iter(container.streams.video), None)
        if video is None:
            raise ValueError("the input has no video stream to transcode")
        audio = next(iter(container.streams.audio), None)
        video.codec_context.thread_type = "AUTO"
        self._video, self._audio, self._fps = video, audio, source_fps(video)
        streams = [stream for stream in (video, audio) if stream is not None]
        timeline = self.timeline
        for packet in self._packets(container, streams):
            if stop is not None and stop.is_set():
                return
            jumps = timeline.discontinuities
            if packet.size == 0 or not timeline.place(packet):
                continue
            if packet.is_corrupt:
                # The demuxer saw packets of it lost or damaged (continuity errors): the decoder
                # conceals what it can, and the damage is counted.
                self._decode_error("demuxing", "a damaged packet")
            if timeline.discontinuities != jumps:
                # Another encoder spliced in (or this one restarted), most likely mid-GOP: its
                # pictures up to the next keyframe would decode against the old one's.
                self._skip_to_keyframe = MAX_SKIPPED_PICTURES
            if packet.stream_index != video.index:
                self._audio_packet(packet)
            elif self._skip_to_keyframe and not packet.is_keyframe:
                self._skip_to_keyframe -= 1
                self.skipped_packets += 1
            else:
                self._skip_to_keyframe = 0
                self._decode_video(packet)

    def _packets(self, container: Any, streams: list[Any]) -> Iterator[av.Packet]:
        """Every packet, going on after what the demuxer reports as broken."""
        errors = 0
        while True:
            try:
                for packet in container.demux(streams):
                    errors = 0
                    yield packet
                return
            except av.error.EOFError:
                return
            except av.FFmpegError as exc:
                errors += 1
                self._decode_error("demuxing", exc)
                if errors >= MAX_DEMUX_ERRORS:
                    raise

    def _decode_error(self, what: str, exc: Exception | str) -> None:
        self.stats.decode_errors += 1
        count = self.stats.decode_errors
        if count == 1 or count % WARN_EVERY == 0:
            log.warning("%s: %s failed (%d so far): %s", self.name or "transcoder", what, count, exc)

    # pictures

    def _decoded(self, stream: Any, packet: av.Packet | None, what: str) -> Iterator[tuple[Any, Fraction]]:
        """The frames ``packet`` completes, each with its time in seconds; frames without a time
        are left out, and a packet that does not decode is counted."""
        try:
            frames = stream.codec_context.decode(packet)
        except av.FFmpegError as exc:
            self._decode_error(what, exc)
            return
        for frame in frames:
            if frame.is_corrupt:
                self._decode_error(what, "a frame decoded with errors")
            # Frames drained at the end come without a packet, and so without a time base.
            base = frame.time_base or stream.time_base
            if frame.pts is not None and base is not None:
                yield frame, frame.pts * Fraction(base)

    def _decode_video(self, packet: av.Packet | None) -> None:
        for frame, seconds in self._decoded(self._video, packet, "decoding video"):
            if self.origin_s is None:
                self._open(frame, seconds)
            for rendition in self.renditions:
                rendition.video(frame, seconds)

    def _flush_video(self) -> None:
        if self._video is not None:
            self._decode_video(None)

    def _open(self, frame: av.VideoFrame, seconds: Fraction) -> None:
        """The first picture: every rendition sets up its encoders, then gets the audio that
        arrived before it."""
        start = Start(seconds, self._fps, (frame.width, frame.height), self._audio)
        service = self.name or "Vajra Cast"
        for rendition in self.renditions:
            rendition.open(start, service)
        self.origin_s = seconds
        if self._on_ready is not None:
            self._on_ready(self)
        held, self._held = self._held, deque(maxlen=HELD_AUDIO)
        for packet in held:
            self._audio_packet(packet)

    # sound

    def _audio_packet(self, packet: av.Packet) -> None:
        if self.origin_s is None:
            self._held.append(packet)
            return
        seconds = (packet.pts if packet.pts is not None else packet.dts) * Fraction(packet.time_base)
        for rendition in self.renditions:
            if not rendition.wants_decoded_audio:
                rendition.audio_packet(packet, seconds)
        if not self._decode_audio:
            return
        for frame, frame_s in self._decoded(self._audio, packet, "decoding audio"):
            for rendition in self.renditions:
                if rendition.wants_decoded_audio:
                    rendition.audio_frame(frame, frame_s)
