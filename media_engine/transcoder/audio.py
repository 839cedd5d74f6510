"""Re-encoding audio to AAC on the same timeline as the video.

Each decoded frame knows where it belongs (its timeline time, shifted like the video's). The
encoder's samples are counted, never timed by the frames, so where the two disagree the frame
decides: audio that would overlap what was already encoded is dropped, and a short hole (a switch,
a lost packet) is filled with silence, so the audio never drifts away from the pictures. A hole
longer than ``MAX_FILL_S`` is left as a jump in the timestamps instead.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av

log = logging.getLogger(__name__)

AAC_FRAME = 1024  # samples per AAC frame: the encoder takes nothing else until the last
DEFAULT_BITRATE = 128_000
# AAC's sample rates; another source rate is resampled to 48 kHz.
AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})
# Audio running this far ahead of where it belongs is dropped; this far behind, the hole is
# filled. Below both, the difference is a rounding of timestamps, not worth a sample.
OVERLAP_S = Fraction(1, 100)
HOLE_S = Fraction(1, 200)
MAX_FILL_S = Fraction(1)


def output_format(stream: Any) -> tuple[int, str]:
    """The sample rate and channel layout to encode a source audio stream into."""
    context = stream.codec_context if stream is not None else None
    rate = getattr(context, "sample_rate", 0) or 48000
    channels = getattr(getattr(context, "layout", None), "nb_channels", 2) or 2
    return (rate if rate in AAC_RATES else 48000), ("mono" if channels == 1 else "stereo")


def silence(format_name: str, layout: str, rate: int, samples: int) -> av.AudioFrame:
    frame = av.AudioFrame(format=format_name, layout=layout, samples=samples)
    frame.sample_rate = rate
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


class AacEncoder:
    """Encodes decoded frames into ``stream`` (an AAC stream of ``rate`` Hz, ``layout``)."""

    def __init__(self, out: Any, rate: int, layout: str, bitrate: int | None) -> None:
        self.rate = rate
        self.layout = layout
        self.stream = out.add_stream("aac", rate=rate)
        self.stream.layout = layout
        self.stream.bit_rate = bitrate or DEFAULT_BITRATE
        self.stream.codec_context.time_base = Fraction(1, rate)
        self._resampler: av.AudioResampler | None = None
        self._input: tuple[str, str, int] | None = None  # what the resampler was set up for
        self._fed_samples = 0  # input samples fed to the resampler, for its timestamps
        self.next_out: int | None = None  # where the next encoded sample goes, in samples
        self._pending = Fraction(0)  # output samples inside the resampler, not encoded yet
        self.dropped_frames = 0
        self.filled_samples = 0

    def push(self, frame: av.AudioFrame, seconds: Fraction) -> list[av.Packet]:
        """``frame`` starts at ``seconds`` of output time; returns the packets to mux."""
        expected = seconds * self.rate
        if expected < 0:
            return []
        packets: list[av.Packet] = []
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._input != shape:
            packets += self._finish_resampler()
            self._start_resampler(shape)
        if self.next_out is None:
            self.next_out = round(expected)
        offset = expected - (self.next_out + self._pending)
        if offset < -OVERLAP_S * self.rate:
            self.dropped_frames += 1
            return packets
        if offset > HOLE_S * self.rate:
            if offset <= MAX_FILL_S * self.rate:
                samples = round(offset * frame.sample_rate / self.rate)
                self.filled_samples += samples
                packets += self._feed(silence(*shape, samples) if samples else None)
            else:
                packets += self._finish_resampler()
                self.next_out = round(expected)
                self._start_resampler(shape)
        packets += self._feed(frame)
        return packets

    def _start_resampler(self, shape: tuple[str, str, int]) -> None:
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate, frame_size=AAC_FRAME)
        self._input = shape

    def _feed(self, frame: av.AudioFrame | None) -> list[av.Packet]:
        if frame is None or self._resampler is None:
            return []
        # The resampler wants steady timestamps; where the samples go is decided here.
        frame.pts = self._fed_samples
        frame.time_base = Fraction(1, frame.sample_rate)
        self._fed_samples += frame.samples
        self._pending += Fraction(frame.samples * self.rate, frame.sample_rate)
        return self._encode(self._resampler.resample(frame))

    def _encode(self, frames: list[av.AudioFrame]) -> list[av.Packet]:
        packets: list[av.Packet] = []
        for out in frames:
            assert self.next_out is not None
            out.pts = self.next_out
            out.time_base = Fraction(1, self.rate)
            self.next_out += out.samples
            self._pending = max(Fraction(0), self._pending - out.samples)
            packets += self.stream.encode(out)
        return packets

    def _finish_resampler(self) -> list[av.Packet]:
        """Complete the frame the resampler holds with silence, so every frame but the very last
        is whole, and forget the resampler."""
        packets: list[av.Packet] = []
        if self._resampler is not None and self._input is not None:
            short = -round(self._pending) % AAC_FRAME
            if short:
                format_name, layout, rate = self._input
                samples = max(1, -(-short * rate // self.rate))
                packets += self._feed(silence(format_name, layout, rate, samples))
        self._resampler = None
        self._input = None
        self._fed_samples = 0
        self._pending = Fraction(0)
        return packets

    def flush(self) -> list[av.Packet]:
        packets: list[av.Packet] = []
        if self._resampler is not None:
            packets += self._encode(self._resampler.resample(None))
        packets += self.stream.encode(None)
        return packets
