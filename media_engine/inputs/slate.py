"""A slate: colour bars and a tone that stand in for a route's inputs when all of them are down.

It runs all the time on every route that has one, so it must cost next to nothing. A clip of one
second (one closed GOP and a whole number of tone cycles) is encoded once at start; from then on
its packets are muxed again and again into a live MPEG-TS with ever-growing timestamps, never
encoded again. The stream is paced by its own PCRs, as an encoder's output would be.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Any

import av
import av.filter

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input, Sink
from media_engine.ts import PACKET, SYNC

log = logging.getLogger(__name__)

VIDEO_ENCODER = "libx264"
AUDIO_ENCODER = "aac"
BARS_SOURCE = "smptehdbars"
MESSAGE = 7 * PACKET

SAMPLE_RATE = 48000
_SAMPLE_RATE_INDEX = 3  # 48 kHz in the ADTS header's table
_CHANNELS = 2
AAC_FRAME = 1024
# The tone repeats every 48 AAC frames (1.024 s): a 1 kHz tone fills that with exactly 1024 cycles,
# so the loop has no seam; other frequencies are rounded to a whole number of cycles (< 0.5 Hz off).
AUDIO_LOOP_FRAMES = 48
TONE_LEVEL = 10 ** (-18 / 20)  # -18 dBFS, the EBU line-up level
AUDIO_BITRATE = 96_000

# PCRs run this far ahead of decoding times, so a decoder always holds this much (as ffmpeg does).
MUX_DELAY_US = 700_000
# Behind schedule by more than this (a stalled machine), the stream carries on from now instead
# of catching up in a burst that a receiver's buffer could not take.
MAX_LATE_S = 1.0
_PCR_WRAP = (1 << 33) * 300
_PCR_HZ = 27_000_000

_BLACK, _WHITE, _NEUTRAL = 16, 235, 128  # limited-range luma, and chroma without colour


@dataclass(frozen=True)
class SlateSettings:
    """What an operator may set in the input's options; every one has a default."""

    width: int = 1280
    height: int = 720
    fps: Fraction = Fraction(25)
    tone_hz: float = 1000.0  # 0 for silence
    text: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> SlateSettings:
        defaults = cls()
        width = _option(options, "width", defaults.width, int, 32, 3840)
        height = _option(options, "height", defaults.height, int, 32, 2160)
        if width % 2 or height % 2:
            raise ValueError(f"slate size {width}x{height}: width and height must be even")
        fps = _option(options, "fps", defaults.fps, lambda text: Fraction(text).limit_denominator(1001), 1, 120)
        tone_hz = _option(options, "tone_hz", defaults.tone_hz, float, 0, 20000)
        return cls(width, height, fps, tone_hz, str(options.get("text", "")).strip())

    @property
    def frames_per_loop(self) -> int:
        # One GOP a loop, no longer than a second, so a keyframe comes at least once a second.
        return max(1, math.floor(self.fps))


def _option(options: Mapping[str, str], key: str, default: Any, parse: Any, low: float, high: float) -> Any:
    raw = options.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = parse(str(raw).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"slate option {key}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"slate option {key}={raw!r} is out of range ({low:g} to {high:g})")
    return value


# Drawing. PyAV's FFmpeg has no drawtext, so text is drawn with a 5x7 font of our own.

_FONT: dict[str, tuple[int, ...]] = {
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    " ": (0, 0, 0, 0, 0, 0, 0),
    "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 0x1F),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "!": (0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "'": (0x04, 0x04, 0x08, 0, 0, 0, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "&": (0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D),
    "#": (0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A),
}
_GLYPH_W, _GLYPH_H, _ADVANCE = 5, 7, 6
_MAX_LINES = 4


class Picture:
    """A yuv420p picture as three planes without row padding, to draw on with plain slices."""

    def __init__(self, width: int, height: int, planes: list[bytearray]) -> None:
        self.width = width
        self.height = height
        self.planes = planes

    @classmethod
    def bars(cls, width: int, height: int) -> Picture:
        graph = av.filter.Graph()
        source = graph.add(BARS_SOURCE, f"size={width}x{height}")
        convert = graph.add("format", "pix_fmts=yuv420p")
        sink = graph.add("buffersink")
        source.link_to(convert)
        convert.link_to(sink)
        graph.configure()
        frame = graph.vpull()
        sizes = ((width, height), (width // 2, height // 2), (width // 2, height // 2))
        planes = []
        for plane, (plane_w, plane_h) in zip(frame.planes, sizes, strict=True):
            data, stride = bytes(plane), plane.line_size
            planes.append(bytearray(b"".join(data[row * stride : row * stride + plane_w] for row in range(plane_h))))
        return cls(width, height, planes)

    def copy(self) -> Picture:
        return Picture(self.width, self.height, [bytearray(plane) for plane in self.planes])

    def fill(self, x: int, y: int, w: int, h: int, luma: int) -> None:
        """A grey rectangle (black to white); coordinates are clipped to the picture."""
        luma_plane, cb, cr = self.planes
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.width, x + w), min(self.height, y + h)
        if x0 >= x1 or y0 >= y1:
            return
        row = bytes([luma]) * (x1 - x0)
        for line in range(y0, y1):
            luma_plane[line * self.width + x0 : line * self.width + x1] = row
        half = self.width // 2
        cx0, cx1 = x0 // 2, (x1 + 1) // 2
        neutral = bytes([_NEUTRAL]) * (cx1 - cx0)
        for line in range(y0 // 2, (y1 + 1) // 2):
            cb[line * half + cx0 : line * half + cx1] = neutral
            cr[line * half + cx0 : line * half + cx1] = neutral

    def draw_text(self, text: str) -> None:
        """White capitals in a black box, centred in the upper part of the picture."""
        lines = [line.strip().upper() for line in text.splitlines() if line.strip()][:_MAX_LINES]
        if not lines:
            return
        longest = max(len(line) for line in lines)
        # One font pixel is scale x scale picture pixels: as large as fits, up to 1/100 of the height.
        scale = max(1, min(self.height // 100, (self.width * 9 // 10) // (_ADVANCE * longest)))
        fits = (self.width * 9 // 10) // (_ADVANCE * scale)
        lines = [line[:fits] for line in lines]
        margin = 2 * scale
        text_w = max(len(line) for line in lines) * _ADVANCE * scale - scale
        line_h = (_GLYPH_H + 3) * scale
        box_w, box_h = text_w + 2 * margin, len(lines) * line_h - 3 * scale + 2 * margin
        box_x, box_y = (self.width - box_w) // 2 & ~1, max(0, self.height // 3 - box_h // 2) & ~1
        self.fill(box_x, box_y, box_w, box_h, _BLACK)
        for number, line in enumerate(lines):
            line_w = len(line) * _ADVANCE * scale - scale
            x = box_x + margin + (text_w - line_w) // 2
            y = box_y + margin + number * line_h
            self._draw_line(line, x, y, scale)

    def _draw_line(self, line: str, x: int, y: int, scale: int) -> None:
        luma = self.planes[0]
        for glyph_row in range(_GLYPH_H):
            pixels = bytearray()
            for char in line:
                bits = _FONT.get(char, _FONT["?"])[glyph_row]
                for column in range(_GLYPH_W):
                    lit = bits >> (_GLYPH_W - 1 - column) & 1
                    pixels += bytes([_WHITE if lit else _BLACK]) * scale
                pixels += bytes([_BLACK]) * scale
            del pixels[-scale:]  # no spacing after the last character
            for line_y in range(y + glyph_row * scale, y + (glyph_row + 1) * scale):
                luma[line_y * self.width + x : line_y * self.width + x + len(pixels)] = pixels

    def to_frame(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        sizes = ((self.width, self.height), (self.width // 2, self.height // 2), (self.width // 2, self.height // 2))
        for plane, data, (plane_w, plane_h) in zip(frame.planes, self.planes, sizes, strict=True):
            view, stride = memoryview(plane), plane.line_size
            if stride == plane_w:
                view[: plane_w * plane_h] = data
                continue
            for row in range(plane_h):
                view[row * stride : row * stride + plane_w] = data[row * plane_w : (row + 1) * plane_w]
        return frame


def slate_pictures(settings: SlateSettings) -> list[Picture]:
    """One loop of pictures: bars, the text, and a white block that crosses a black strip at the
    bottom once a loop, so a live slate is never mistaken for a frozen picture."""
    base = Picture.bars(settings.width, settings.height)
    base.draw_text(settings.text)
    width, height, count = settings.width, settings.height, settings.frames_per_loop
    block_h = max(2, height // 45 & ~1)
    strip_h = 2 * block_h
    base.fill(0, height - strip_h, width, strip_h, _BLACK)
    block_w = max(2, width // 10 & ~1)
    pictures = []
    for index in range(count):
        picture = base.copy()
        # Frame ``count`` would be back at x = 0, which is the next loop's first frame: no jump.
        x = index * width // count & ~1
        top = height - strip_h + (strip_h - block_h) // 2
        picture.fill(x, top, block_w, block_h, _WHITE)
        picture.fill(x - width, top, block_w, block_h, _WHITE)  # the part that wrapped round
        pictures.append(picture)
    return pictures


# Encoding, once.


@dataclass(frozen=True)
class Clip:
    """One loop of the slate, encoded: a closed GOP whose first frame is an IDR (with SPS and PPS),
    and the tone as ADTS frames holding a whole number of its cycles."""

    width: int
    height: int
    fps: Fraction
    video: tuple[bytes, ...]
    audio: tuple[bytes, ...]


def encode_clip(settings: SlateSettings) -> Clip:
    """Encode one loop. Raises ValueError naming what this FFmpeg lacks, or why encoding failed."""
    missing = []
    if BARS_SOURCE not in av.filter.filters_available:
        missing.append(f"the {BARS_SOURCE} video source (libavfilter)")
    for name, what in ((VIDEO_ENCODER, "H.264 encoder"), (AUDIO_ENCODER, "AAC encoder")):
        try:
            av.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            missing.append(f"the {what} {name}")
    if missing:
        raise ValueError(f"cannot build the slate: FFmpeg (PyAV) has no {' and no '.join(missing)}")
    try:
        video = _encode_video(settings)
        audio = _encode_audio(settings.tone_hz)
    except av.FFmpegError as exc:
        raise ValueError(f"cannot build the slate: {exc}") from exc
    return Clip(settings.width, settings.height, settings.fps, video, audio)


def _encode_video(settings: SlateSettings) -> tuple[bytes, ...]:
    count = settings.frames_per_loop
    time_base = 1 / settings.fps
    encoder = av.CodecContext.create(VIDEO_ENCODER, "w")
    encoder.width, encoder.height, encoder.pix_fmt = settings.width, settings.height, "yuv420p"
    encoder.time_base, encoder.framerate = time_base, settings.fps
    encoder.gop_size, encoder.max_b_frames = count, 0
    # No B-frames and no scene cuts: one IDR then P-frames, decoded in presentation order, so the
    # loop restarts cleanly on its IDR. Encoded once: the preset only costs start-up time.
    encoder.options = {
        "preset": "fast",
        "crf": "20",
        "x264-params": f"keyint={count}:min-keyint={count}:scenecut=0:bframes=0:open-gop=0",
    }
    packets: list[av.Packet] = []
    for index, picture in enumerate(slate_pictures(settings)):
        frame = picture.to_frame()
        frame.pts, frame.time_base = index, time_base
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    if [packet.pts for packet in packets] != list(range(count)) or not packets[0].is_keyframe:
        raise ValueError(f"cannot build the slate: {VIDEO_ENCODER} did not give one GOP of {count} frames")
    return tuple(bytes(packet) for packet in packets)


def _encode_audio(tone_hz: float) -> tuple[bytes, ...]:
    encoder = av.CodecContext.create(AUDIO_ENCODER, "w")
    encoder.sample_rate, encoder.layout, encoder.format = SAMPLE_RATE, "stereo", "fltp"
    encoder.bit_rate, encoder.time_base = AUDIO_BITRATE, Fraction(1, SAMPLE_RATE)
    encoder.open()
    if encoder.frame_size != AAC_FRAME:
        raise ValueError(f"cannot build the slate: {AUDIO_ENCODER} frames are {encoder.frame_size} samples")
    loop = AAC_FRAME * AUDIO_LOOP_FRAMES
    cycles = round(tone_hz * loop / SAMPLE_RATE)
    step = 2 * math.pi * cycles / loop
    samples = array("f", (TONE_LEVEL * math.sin(step * n) for n in range(loop)))
    period, frame_bytes = samples.tobytes(), AAC_FRAME * samples.itemsize
    # Each AAC frame overlaps its neighbours. Three periods are encoded and the middle one kept:
    # its first frame was encoded after the end of a period, exactly what precedes it in the loop.
    packets: list[av.Packet] = []
    for index in range(3 * AUDIO_LOOP_FRAMES):
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=AAC_FRAME)
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, index * AAC_FRAME, encoder.time_base
        start = index % AUDIO_LOOP_FRAMES * frame_bytes
        for plane in frame.planes:
            memoryview(plane)[:frame_bytes] = period[start : start + frame_bytes]
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    middle = [packet for packet in packets if packet.pts is not None and loop <= packet.pts < 2 * loop]
    if len(middle) != AUDIO_LOOP_FRAMES:
        raise ValueError(f"cannot build the slate: {AUDIO_ENCODER} gave {len(middle)} frames for one loop")
    return tuple(_adts(bytes(packet)) for packet in middle)


def _adts(payload: bytes) -> bytes:
    """An AAC-LC frame with its ADTS header, the form MPEG-TS carries."""
    size = len(payload) + 7
    profile = 1  # AAC LC (object type 2)
    header = bytes(
        [
            0xFF,
            0xF1,  # MPEG-4, no CRC
            profile << 6 | _SAMPLE_RATE_INDEX << 2 | _CHANNELS >> 2,
            (_CHANNELS & 3) << 6 | size >> 11,
            size >> 3 & 0xFF,
            (size & 7) << 5 | 0x1F,
            0xFC,  # buffer fullness "variable", one raw data block
        ]
    )
    return header + payload


# Looping and pacing, for as long as the slate runs.


class LoopMuxer:
    """Muxes the clip again and again into an MPEG-TS, with timestamps that keep growing."""

    def __init__(self, clip: Clip, service: str, writer: Any) -> None:
        self._out = av.open(
            writer,
            "w",
            format="mpegts",
            container_options={
                "flush_packets": "1",  # hand each packet's TS bytes over at once
                "max_delay": str(MUX_DELAY_US),
                "pcr_period": "20",  # ms: in practice a PCR with every video frame
                "pat_period": "0.1",
                # One PES per audio frame: the bytes then flow evenly, so no message waits long for
                # its last packet (grouped audio left gaps of 200 ms between messages).
                "pes_payload_size": "0",
            },
        )
        self._out.metadata["service_provider"] = "Vajra Cast"
        self._out.metadata["service_name"] = service
        self._video = self._out.add_mux_stream("h264", rate=clip.fps, width=clip.width, height=clip.height)
        self._audio = self._out.add_mux_stream("aac", rate=SAMPLE_RATE)
        self._video_packets = [self._packet(data, self._video) for data in clip.video]
        self._video_packets[0].is_keyframe = True
        self._audio_packets = [self._packet(data, self._audio) for data in clip.audio]
        self._video_base = 1 / clip.fps
        self._audio_base = Fraction(1, SAMPLE_RATE)
        self._fps = clip.fps
        self._frames = 0  # video frames muxed so far
        self._audio_frames = 0

    @staticmethod
    def _packet(data: bytes, stream: Any) -> av.Packet:
        packet = av.Packet(data)
        packet.stream = stream
        return packet

    def mux_next(self) -> None:
        """Mux whichever of the next video and audio frames comes first."""
        # frame / fps <= audio_frames * AAC_FRAME / SAMPLE_RATE, in integers
        video_first = (
            self._frames * self._fps.denominator * SAMPLE_RATE <= self._audio_frames * AAC_FRAME * self._fps.numerator
        )
        if video_first:
            packet = self._video_packets[self._frames % len(self._video_packets)]
            packet.time_base, packet.pts, packet.dts, packet.duration = self._video_base, self._frames, self._frames, 1
            self._frames += 1
        else:
            packet = self._audio_packets[self._audio_frames % len(self._audio_packets)]
            pts = self._audio_frames * AAC_FRAME
            packet.time_base, packet.pts, packet.dts, packet.duration = self._audio_base, pts, pts, AAC_FRAME
            self._audio_frames += 1
        self._out.mux_one(packet)

    def close(self) -> None:
        self._out.close()  # writes the trailer once; later calls do nothing


class Pacer:
    """Takes the muxer's bytes and cuts them into messages, each due when its last byte would
    leave a real-time sender: bytes between two PCRs are spread evenly over the time between."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._read = 0  # where the next message starts
        self._scanned = 0  # where the next packet to look at for a PCR starts
        self._marks: deque[tuple[int, float]] = deque()  # (offset, seconds since the first PCR)
        self._last_pcr: int | None = None
        self._clock = 0.0

    def write(self, data: bytes) -> int:
        self._data += data
        self._scan()
        return len(data)

    def _scan(self) -> None:
        data, offset = self._data, self._scanned
        while offset + PACKET <= len(data):
            if data[offset] != SYNC:
                raise ValueError("the muxer wrote a packet without a sync byte")
            # An adaptation field long enough for a PCR, with the PCR flag set.
            if data[offset + 3] & 0x20 and data[offset + 4] >= 7 and data[offset + 5] & 0x10:
                self._mark(offset, data[offset + 6 : offset + 12])
            offset += PACKET
        self._scanned = offset

    def _mark(self, offset: int, field: bytes | bytearray) -> None:
        base = field[0] << 25 | field[1] << 17 | field[2] << 9 | field[3] << 1 | field[4] >> 7
        pcr = base * 300 + ((field[4] & 1) << 8 | field[5])
        if self._last_pcr is None:
            self._marks.append((0, 0.0))  # what came before the first PCR is due with it
        else:
            # PCRs wrap after 26.5 hours; the clock here does not.
            self._clock += (pcr - self._last_pcr) % _PCR_WRAP / _PCR_HZ
        self._last_pcr = pcr
        self._marks.append((offset, self._clock))

    def next_due(self) -> float | None:
        """When the next whole message is due (seconds since the first PCR), or None until the
        muxer has written past it."""
        end = self._read + MESSAGE
        if end > self._scanned:
            return None
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= self._read:
            marks.popleft()
        for (start, start_s), (stop, stop_s) in pairwise(marks):
            if stop >= end:
                return stop_s if stop == start else start_s + (stop_s - start_s) * (end - start) / (stop - start)
        return None

    def take(self) -> bytes:
        message = bytes(self._data[self._read : self._read + MESSAGE])
        self._read += MESSAGE
        if self._read >= 1 << 16:  # drop what was sent now and then, not on every message
            read = self._read
            del self._data[:read]
            self._read, self._scanned = 0, self._scanned - read
            self._marks = deque((offset - read, when) for offset, when in self._marks)
        return message

    def drain(self) -> Iterator[bytes]:
        """Everything not taken yet, in messages; the last may be shorter."""
        end = self._scanned
        for start in range(self._read, end, MESSAGE):
            yield bytes(self._data[start : min(start + MESSAGE, end)])
        self._read = end


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
