"""One rendition of a transcoder: scale, map onto a constant frame rate, encode, mux MPEG-TS and
hand the muxed bytes on in messages of seven TS packets.

Output time 0 is the timeline time of the transcoder's first picture (its origin), shifted by
``ORIGIN_S`` so that an encoder's first decoding times (before its first presentation time, with
B-frames) stay positive. Video and audio are shifted alike, so they stay in sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

from media_engine.config import TranscodeSettings
from media_engine.remux import MESSAGE, open_ts_muxer
from media_engine.transcoder.audio import AacEncoder, output_format
from media_engine.transcoder.encoders import Encoder
from media_engine.transcoder.framerate import FrameRateMapper
from media_engine.transcoder.scaler import Scaler
from media_engine.transcoder.stats import RenditionStats

ORIGIN_S = 1
GOP_S = 2  # the default GOP: HLS players and SRT receivers join within this
HARDWARE_UPLOAD = frozenset({"vaapi", "qsv"})  # encoders fed nv12 frames that PyAV uploads
PRESETS = frozenset({"software", "qsv"})  # encoders that understand x264-style preset names


class MessageWriter:
    """Takes the muxer's bytes; each whole message goes to ``sink`` as soon as it is complete."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self._data = bytearray()

    def write(self, data: bytes) -> int:
        self._data += data
        if len(self._data) >= MESSAGE:
            whole = len(self._data) - len(self._data) % MESSAGE
            view = memoryview(self._data)
            try:
                for start in range(0, whole, MESSAGE):
                    self.sink(bytes(view[start : start + MESSAGE]))
            finally:
                view.release()
            del self._data[:whole]
        return len(data)

    def flush(self) -> None:
        """The rest, shorter than a message (the end of the stream)."""
        if self._data:
            self.sink(bytes(self._data))
            self._data.clear()


def even(value: int) -> int:
    return max(2, value - value % 2)


def output_size(settings: TranscodeSettings, source: tuple[int, int]) -> tuple[int, int]:
    """The rendition's picture size: as set, the source's where unset (one side set: the other
    keeps the source's aspect ratio), always even, as 4:2:0 needs."""
    width, height = settings.width, settings.height
    source_width, source_height = source
    if width is None and height is None:
        width, height = source_width, source_height
    elif width is None:
        assert height is not None
        width = round(source_width * height / max(source_height, 1))
    elif height is None:
        height = round(source_height * width / max(source_width, 1))
    return even(width), even(height)


def gop_frames(settings: TranscodeSettings, fps: Fraction) -> int:
    return settings.gop if settings.gop else max(1, round(fps * GOP_S))


def codec_options(settings: TranscodeSettings, encoder: Encoder, gop: int) -> dict[str, str]:
    # A fixed GOP (no scene cuts, no shorter GOPs): renditions of a ladder put their keyframes on
    # the same frames, so players switch between them at segment boundaries.
    options = {"keyint_min": str(gop), "sc_threshold": "0"}
    if settings.video_bitrate_bps:
        # A one-second VBV buffer at the target rate: the rate holds over every second or so,
        # which is what a contribution link (SRT, UDP) can carry.
        options["maxrate"] = options["bufsize"] = str(settings.video_bitrate_bps)
    if encoder.kind in PRESETS and settings.preset:
        options["preset"] = settings.preset
    if encoder.codec_name == "libx265":
        options["x265-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"
    return options


@dataclass(frozen=True)
class Start:
    """What the transcoder learned from its first picture, the same for every rendition."""

    origin_s: Fraction  # timeline time of the first picture
    source_fps: Fraction
    source_size: tuple[int, int]
    audio: Any  # the input's audio stream (None: no audio)


class Rendition:
    def __init__(
        self, settings: TranscodeSettings, encoder: Encoder, sink: Callable[[bytes], None], stats: RenditionStats
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.stats = stats
        self.writer = MessageWriter(sink)
        self.size: tuple[int, int] | None = None
        self.fps: Fraction | None = None
        self._out: Any = None
        self._video: Any = None
        self._audio_copy: Any = None
        self._aac: AacEncoder | None = None
        self._mapper: FrameRateMapper | None = None
        self._scaler: Scaler | None = None
        self._format = "nv12" if encoder.kind in HARDWARE_UPLOAD else "yuv420p"
        self._origin_slots = 0
        self._shift_s = Fraction(0)  # timeline seconds to output seconds
        self._start_s = Fraction(0)  # output time of the first picture: no sound before it
        self._last: av.VideoFrame | None = None

    @property
    def wants_decoded_audio(self) -> bool:
        return self.settings.audio_codec == "aac"

    def open(self, start: Start, service: str) -> None:
        settings = self.settings
        fps = Fraction(settings.fps) if settings.fps else start.source_fps
        width, height = self.size = output_size(settings, start.source_size)
        self._scaler = Scaler(width, height, self._format)
        gop = gop_frames(settings, fps)
        self.fps = self.stats.fps = fps
        self._origin_slots = math.ceil(ORIGIN_S * fps)
        self._start_s = self._origin_slots / fps
        self._shift_s = self._start_s - start.origin_s
        self._mapper = FrameRateMapper(fps, origin=start.origin_s)
        out = open_ts_muxer(self.writer, service)
        try:
            video = out.add_stream(self.encoder.codec_name, rate=fps, hwaccel=self.encoder.hwaccel())
            video.width, video.height = width, height
            video.pix_fmt = self._format
            video.gop_size = gop
            video.codec_context.time_base = 1 / fps
            if settings.video_bitrate_bps:
                video.bit_rate = settings.video_bitrate_bps
            video.codec_context.options = codec_options(settings, self.encoder, gop)
            if self.encoder.kind == "software":
                # Frame threads, as the ffmpeg command line gives x264 and x265: about 15 % more
                # pictures per second than PyAV's sliced default on two cores, for a few frames
                # of delay, which a live contribution link absorbs.
                video.codec_context.thread_type = "FRAME"
            if start.audio is not None:
                if self.wants_decoded_audio:
                    rate, layout = output_format(start.audio)
                    self._aac = AacEncoder(out, rate, layout, settings.audio_bitrate_bps)
                else:
                    self._audio_copy = out.add_stream_from_template(start.audio)
        except Exception:
            out.close()
            raise
        self._out, self._video = out, video

    # pictures

    def video(self, frame: av.VideoFrame, seconds: Fraction) -> None:
        mapper = self._mapper
        assert mapper is not None
        placement = mapper.place(seconds)
        if placement.dropped:
            self.stats.dropped_frames += 1
            return
        if placement.repeat and self._last is not None:
            self.stats.duplicated_frames += placement.repeat
            for slot in range(placement.slot - placement.repeat, placement.slot):
                self._encode(self._last, slot)
        assert self._scaler is not None
        picture = self._scaler(frame)
        # The source's picture types would make the encoder put keyframes where the source had
        # them, and the GOP would no longer be fixed.
        picture.pict_type = PictureType.NONE
        self._encode(picture, placement.slot)
        self._last = picture

    def _encode(self, picture: av.VideoFrame, slot: int) -> None:
        picture.pts = slot + self._origin_slots
        picture.time_base = self._video.codec_context.time_base
        self._out.mux(self._video.encode(picture))
        self.stats.frames += 1

    # sound

    def audio_packet(self, packet: av.Packet, seconds: Fraction) -> None:
        """A source packet for a copied audio stream, at ``seconds`` on the timeline."""
        stream = self._audio_copy
        if stream is None or packet.pts is None or packet.dts is None or seconds + self._shift_s < self._start_s:
            return
        base = packet.time_base
        shift = round(self._shift_s / base)
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts = packet.pts + shift, packet.dts + shift
        copy.duration = packet.duration
        copy.time_base = base
        copy.stream = stream
        self._out.mux(copy)

    def audio_frame(self, frame: av.AudioFrame, seconds: Fraction) -> None:
        """A decoded source frame for an AAC stream, at ``seconds`` on the timeline."""
        if self._aac is None or seconds + self._shift_s < self._start_s:
            return
        self._out.mux(self._aac.push(frame, seconds + self._shift_s))

    # the end

    def close(self) -> None:
        """Encode what the encoders hold, then close the muxer and send its last bytes."""
        out = self._out
        if out is None:
            return
        self._out = None
        try:
            out.mux(self._video.encode(None))
            if self._aac is not None:
                out.mux(self._aac.flush())
        finally:
            out.close()
            self.writer.flush()
