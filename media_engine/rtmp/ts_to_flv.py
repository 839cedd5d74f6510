"""The relay's MPEG-TS remuxed, without decoding, to the FLV tags the push output publishes: PyAV
demuxes the TS and muxes FLV into memory (stream copy: H.264 and AAC, never re-encoded). Every
connection starts on a video keyframe, with timestamps from zero.

AAC: MPEG-TS carries it in ADTS frames; FLV wants raw frames and the AudioSpecificConfig in a
sequence header first. FFmpeg's FLV muxer inserts the aac_adtstoasc filter by itself, but with no
config known when the header is written it sends an empty AAC sequence header first, and the real
one only with the first frame, which some servers take badly. The config is therefore built from
the first ADTS header and set before the header is written; the filter then only strips headers.

Timestamps: after a failover switch the TS timestamps jump to another encoder's clock, and
platforms drop a publisher whose timestamps go back. A Timeline (media_engine.remux) offsets every
jump away, so the FLV timestamps only grow.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from media_engine.remux import Timeline
from media_engine.rtmp import flv

log = logging.getLogger(__name__)

# The demuxer reads at most this much before it must know the streams: enough for a keyframe with
# its SPS at any usual GOP length, and it stops as soon as every stream is known.
_PROBE_SIZE = 4 * 1024 * 1024
_ANALYZE_US = 5_000_000
# With video, how long to wait for the first audio frame (its ADTS header gives the config) before
# publishing the video alone.
_AUDIO_WAIT_S = 2.0
# FLV muxer: interleave audio and video over at most this much (µs); an input without audio after
# a switch must not hold the video back for FFmpeg's default 10 s.
_MAX_INTERLEAVE_US = 1_000_000

Tag = tuple[int, int, bytes]  # type, timestamp in ms, body


class FlvTags:
    """What the FLV muxer writes, cut into tags for publishing."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._in_header = True
        self.tags: deque[Tag] = deque()

    def write(self, data: bytes) -> int:
        buffer = self._data
        buffer += data
        offset = 0
        if self._in_header:
            if len(buffer) < 9:
                return len(data)
            offset = int.from_bytes(buffer[5:9], "big") + 4  # the file header and PreviousTagSize0
            if len(buffer) < offset:
                return len(data)
            self._in_header = False
        while offset + flv.TAG_HEADER <= len(buffer):
            tag_type, size, timestamp = flv.parse_tag_header(buffer, offset)
            end = offset + flv.TAG_HEADER + size + 4
            if end > len(buffer):
                break
            self.tags.append((tag_type, timestamp, bytes(buffer[offset + flv.TAG_HEADER : end - 4])))
            offset = end
        del buffer[:offset]
        return len(data)


def audio_specific_config(adts: bytes) -> bytes | None:
    """The AudioSpecificConfig an ADTS header describes (FLV's AAC sequence header), or None when
    the frame has no ADTS header."""
    if len(adts) < 7 or adts[0] != 0xFF or adts[1] & 0xF6 != 0xF0:
        return None
    object_type = (adts[2] >> 6) + 1
    rate_index = adts[2] >> 2 & 0x0F
    channels = (adts[2] & 1) << 2 | adts[3] >> 6
    return bytes((object_type << 3 | rate_index >> 1, (rate_index & 1) << 7 | channels << 3))


class Unsuitable(Exception):
    """Nothing in the stream that FLV can carry; the message says what there is."""


def open_ts(source: Any) -> Any:
    """A demuxer reading MPEG-TS from ``source`` (anything with ``read(size)``); raises av.FFmpegError
    when the stream cannot be read."""
    return av.open(
        source,
        "r",
        format="mpegts",
        container_options={"probesize": str(_PROBE_SIZE), "analyzeduration": str(_ANALYZE_US)},
    )


def pick_streams(source: Any) -> tuple[Any, Any]:
    """The video (H.264) and audio (AAC or MP3) streams to send; either may be None."""
    found = [(stream, getattr(stream.codec_context, "name", "?")) for stream in source.streams]
    video = next(((stream, name) for stream, name in found if stream.type == "video"), None)
    audio = next((stream for stream, name in found if stream.type == "audio" and name in ("aac", "mp3")), None)
    if video is not None and video[1] != "h264":
        raise Unsuitable(f"RTMP carries H.264 video; the stream's video is {video[1]}")
    if video is None and audio is None:
        kinds = ", ".join(f"{stream.type} {name}" for stream, name in found) or "nothing"
        raise Unsuitable(f"no H.264 video or AAC audio to send (the stream has {kinds})")
    return (video[0] if video else None), audio


def first_packets(packets: Iterator[Any], video: Any, audio: Any, name: str) -> tuple[list[Any], Any, bytes | None]:
    """The packets to start with, from the first video keyframe on (the first audio frame, when
    there is no video); the audio stream, or None when it does not come in time; its AAC config."""
    start: Fraction | None = None
    kept: list[Any] = []
    for packet in packets:
        if not packet.size or packet.dts is None:
            continue
        when = packet.dts * Fraction(packet.time_base)
        index = packet.stream_index
        if start is None:
            leader = video if video is not None else audio
            if index != leader.index or (leader is video and not packet.is_keyframe):
                continue
            start = when
        if audio is not None and index == audio.index:
            if when < start:
                continue
            config = audio_specific_config(bytes(packet)) if audio.codec_context.name == "aac" else None
            return [*kept, packet], audio, config
        if video is not None and index == video.index:
            kept.append(packet)
            if audio is None:
                return kept, None, None
            if when - start > _AUDIO_WAIT_S:
                log.warning("%s: no audio within %g s; publishing video alone", name, _AUDIO_WAIT_S)
                return kept, None, None
    return [], audio, None


class TsToFlv:
    """One connection's FLV muxer, fed the demuxer's packets of ``video`` and ``audio``; its tags
    wait in ``tags`` until published."""

    def __init__(self, video: Any, audio: Any, config: bytes | None) -> None:
        self._tags = FlvTags()
        self._out = av.open(
            self._tags,
            "w",
            format="flv",
            container_options={
                "flvflags": "no_duration_filesize",  # a live stream: no seeking back to fill them in
                "flush_packets": "1",
                "max_interleave_delta": str(_MAX_INTERLEAVE_US),
            },
        )
        self.timeline = Timeline(max_gap_s=1.0, start_at_zero=True)
        self._mapped: dict[int, Any] = {}
        try:
            if video is not None:
                self._mapped[video.index] = self._out.add_stream_from_template(video)
            if audio is not None:
                stream = self._out.add_stream_from_template(audio)
                if config is not None:
                    stream.codec_context.extradata = config
                self._mapped[audio.index] = stream
        except BaseException:
            self.close()
            raise

    @property
    def tags(self) -> deque[Tag]:
        return self._tags.tags

    def carries(self, packet: av.Packet) -> bool:
        """Whether ``packet`` belongs to a stream sent (and has data)."""
        return bool(packet.size) and packet.stream_index in self._mapped

    def mux(self, packet: av.Packet) -> bool:
        """Mux a packet ``carries``; False when it was dropped instead."""
        # Audio the TS carried just ahead of the first keyframe would land before zero.
        if not self.timeline.place(packet) or packet.dts < 0:
            return False
        packet.stream = self._mapped[packet.stream_index]
        self._out.mux_one(packet)
        return True

    def close(self) -> None:
        with contextlib.suppress(av.FFmpegError):
            self._out.close()
