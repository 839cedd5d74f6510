"""The clip muxed again and again into a live MPEG-TS, so the slate never encodes after start."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from media_engine.remux import open_ts_muxer
from media_engine.slate.clip import AAC_FRAME, SAMPLE_RATE, Clip


class LoopMuxer:
    """Muxes the clip again and again into an MPEG-TS, with timestamps that keep growing."""

    def __init__(self, clip: Clip, service: str, writer: Any) -> None:
        self._out = open_ts_muxer(writer, service)
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

    def mux_next(self) -> bool:
        """Mux whichever of the next video and audio frames comes first. The clip never ends: True."""
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
        return True

    def close(self) -> None:
        self._out.close()  # writes the trailer once; later calls do nothing
