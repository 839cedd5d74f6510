"""File input: a local media file (``config.url``: a path, or a file:// URL) played in real time
and looped for ever, for slates and test patterns.

The file's packets are remuxed, never decoded, into one live MPEG-TS: each pass over the file
continues the timestamps where the previous one ended, and the whole is paced by its PCRs, as the
slate is (media_engine.remux). Any file FFmpeg reads works as long as its codecs fit in MPEG-TS
(H.264, HEVC, MPEG-2, AAC, MP2/MP3, AC-3, ...): a TS, an MP4, a MOV or an MKV.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import av

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Sink
from media_engine.inputs.produced import ProducedInput
from media_engine.remux import Pacer, Timeline, describe_error, open_ts_muxer

log = logging.getLogger(__name__)


def local_path(url: str) -> Path:
    text = url.strip()
    if text.startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{url!r} names a file on another host")
        return Path(unquote(parts.path))
    return Path(text)


class FileLoop:
    """The file's audio and video packets muxed into an MPEG-TS again and again. Each pass opens
    the file anew and starts where the previous pass ended, on every stream at once, so the streams
    stay in sync and the timestamps keep growing."""

    def __init__(self, path: Path, service: str, writer: Any) -> None:
        self.path = path
        self.passes = 0
        self._source = self._open()
        streams = [stream for stream in self._source.streams if stream.type in ("video", "audio")]
        if not streams:
            self._source.close()
            raise ValueError("it has no audio or video stream")
        self._indexes = [stream.index for stream in streams]
        self._out = open_ts_muxer(writer, service)
        self._mapped = {stream.index: self._out.add_stream_from_template(stream) for stream in streams}
        self._packets = self._source.demux(streams)
        # A file's own gaps are its content and are kept; only timestamps going back are mended.
        self._timeline = Timeline(max_gap_s=None)
        self._start: Fraction | None = None  # seconds: the earliest timestamp of a pass
        self._earliest: Fraction | None = None  # the same, while the first pass runs
        self._muxed_this_pass = 0

    def _open(self) -> Any:
        return av.open(str(self.path))

    def mux_next(self) -> bool:
        """Mux the next packet; at the end of the file, start the next pass. The loop never ends: True."""
        packet = next(self._packets, None)
        if packet is None:
            self._rewind()
            return True
        if not packet.size:
            return True
        if not self.passes:
            self._note_start(packet)
        if self._timeline.place(packet):
            packet.stream = self._mapped[packet.stream_index]
            self._out.mux_one(packet)
            self._muxed_this_pass += 1
        return True

    def _note_start(self, packet: av.Packet) -> None:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or packet.time_base is None:
            return
        when = stamp * Fraction(packet.time_base)
        if self._earliest is None or when < self._earliest:
            self._earliest = when

    def _rewind(self) -> None:
        if not self._muxed_this_pass:
            raise ValueError(f"{self.path} gave no packets")
        if self._start is None:
            self._start = self._earliest
        self.passes += 1
        self._muxed_this_pass = 0
        self._source.close()
        self._source = self._open()
        self._packets = self._source.demux([self._source.streams[index] for index in self._indexes])
        self._timeline.splice(self._start)

    def close(self) -> None:
        self._out.close()  # writes the trailer once; later calls do nothing
        self._source.close()  # as harmless when already closed


class FileInput(ProducedInput):
    """Plays ``config.url``, a local media file, in real time, looped with continuous timestamps.
    A file that is missing or cannot be played fails ``start()`` with a ValueError naming it."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        if not config.url.strip():
            raise ValueError(f"input {config.name!r}: a file input needs the path of a media file")
        self.path = local_path(config.url)

    def start(self, sink: Sink) -> None:
        pacer = Pacer()
        self._play(sink, self._load(pacer), pacer, str(self.path))

    def _load(self, pacer: Pacer) -> FileLoop:
        """Open the file and mux its first packet, so a file that cannot be played fails here."""
        where = f"input {self.config.name!r}: cannot play {self.path}"
        if not self.path.is_file():
            raise ValueError(f"{where}: no such file")
        loop = None
        try:
            loop = FileLoop(self.path, self.config.name, pacer)
            loop.mux_next()
        except (av.FFmpegError, OSError, ValueError) as exc:
            if loop is not None:
                loop.close()
            raise ValueError(f"{where}: {describe_error(exc)}") from exc
        return loop
