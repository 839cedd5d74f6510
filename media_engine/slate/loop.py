"""The clip muxed again and again into a live MPEG-TS, so the slate never encodes after start."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from media_engine.slate.clip import AAC_FRAME, SAMPLE_RATE, Clip

# PCRs run this far ahead of decoding times, so a decoder always holds this much (as ffmpeg does).
MUX_DELAY_US = 700_000


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
