"""One loop of the slate, encoded once at start; everything after only muxes these packets again."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter

from media_engine.slate.picture import BARS_SOURCE, slate_pictures
from media_engine.slate.settings import SlateSettings

VIDEO_ENCODER = "libx264"
AUDIO_ENCODER = "aac"

SAMPLE_RATE = 48000
_SAMPLE_RATE_INDEX = 3  # 48 kHz in the ADTS header's table
_CHANNELS = 2
AAC_FRAME = 1024
# The tone repeats every 48 AAC frames (1.024 s): a 1 kHz tone fills that with exactly 1024 cycles,
# so the loop has no seam; other frequencies are rounded to a whole number of cycles (< 0.5 Hz off).
AUDIO_LOOP_FRAMES = 48
TONE_LEVEL = 10 ** (-18 / 20)  # -18 dBFS, the EBU line-up level
AUDIO_BITRATE = 96_000


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
