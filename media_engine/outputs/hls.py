"""HLS output: a live playlist (``index.m3u8``) and its MPEG-TS segments, written into a directory
the web app serves (or a CDN origin reads).

Segments are cut from the relayed stream as it is, by ``media_engine.segmenter``: each begins at a
keyframe with the PAT and PMT, and lasts about ``segment_s`` (whole GOPs, so longer when the GOP
is). An input switch changes the time base: the segment it falls in is timed by the clock, it ends
at the new input's first keyframe, and ``#EXT-X-DISCONTINUITY`` precedes the next one.

Options: ``segment_s`` (target duration, default 4), ``playlist_size`` (segments listed, default 6).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media_engine.config import EndpointConfig
from media_engine.options import float_option, int_option
from media_engine.outputs.written import WrittenOutput
from media_engine.segmenter import (
    BackgroundWriter,
    Segment,
    Segmenter,
    output_directory,
)

PLAYLIST = "index.m3u8"
SEGMENT_NAME = re.compile(r"^segment-(\d+)\.ts$")


def segment_name(sequence: int) -> str:
    return f"segment-{sequence:08d}.ts"


@dataclass(frozen=True)
class _Listed:
    sequence: int
    name: str
    duration_s: float
    discontinuity: bool


class HlsOutput(WrittenOutput):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.directory = output_directory(config)
        self.segment_s = float_option(config, "segment_s", 4.0, minimum=0.5)
        self.playlist_size = int_option(config, "playlist_size", 6, minimum=1)
        # RFC 8216 6.2.2: a segment gone from the playlist stays available for its own duration plus
        # the playlist's, for players that loaded the playlist just before it changed.
        self.grace_segments = self.playlist_size + 1
        self._listed: deque[_Listed] = deque()
        self._next_sequence = 0
        self._discontinuity_sequence = 0
        self._discontinuity_next = False
        # Whole seconds, never lowered: players size their buffers and reload timers on it.
        self._target_duration = math.ceil(self.segment_s)
        self._segmenter = Segmenter(self, self.segment_s, one_time_base=True)
        self._writer = BackgroundWriter(
            config.name, self.stats, self._segmenter, where=str(self.directory), prepare=self._prepare
        )

    # called from the writer thread

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # A restarted output goes on numbering after what it wrote before, so players polling the
        # playlist see it move on (across a discontinuity) rather than start over.
        found = [number for _, number in self._segment_files()]
        if found:
            self._next_sequence = max(found) + 1
            self._discontinuity_next = True

    def open_segment(self, started_at: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)  # back after a clean-up removed it
        sequence, self._next_sequence = self._next_sequence, self._next_sequence + 1
        return self.directory / segment_name(sequence)

    def segment_done(self, segment: Segment) -> None:
        match = SEGMENT_NAME.match(segment.path.name)
        discontinuity = segment.discontinuous_start or self._discontinuity_next
        if match is None or segment.duration_s <= 0:
            # Nothing a player could use (the output stopped right after a cut).
            self._discontinuity_next = discontinuity
            with contextlib.suppress(OSError):
                segment.path.unlink()
            return
        self._discontinuity_next = False
        self._listed.append(_Listed(int(match[1]), segment.path.name, segment.duration_s, discontinuity))
        while len(self._listed) > self.playlist_size:
            if self._listed.popleft().discontinuity:
                self._discontinuity_sequence += 1
        self._target_duration = max(self._target_duration, math.floor(segment.duration_s + 0.5))
        self._write_playlist()
        self._remove_old_segments()

    def _write_playlist(self) -> None:
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self._target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{self._listed[0].sequence}",
        ]
        if self._discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._discontinuity_sequence}")
        for listed in self._listed:
            if listed.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += [f"#EXTINF:{listed.duration_s:.3f},", listed.name]
        # Players and the web server read it at any moment: they see the old one or the new one.
        temporary = self.directory / f".{PLAYLIST}.tmp"
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temporary, self.directory / PLAYLIST)

    def _remove_old_segments(self) -> None:
        oldest_kept = self._listed[0].sequence - self.grace_segments
        for path, number in self._segment_files():
            if number < oldest_kept:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _segment_files(self) -> list[tuple[Path, int]]:
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                match = SEGMENT_NAME.match(entry.name)
                if match is not None:
                    found.append((Path(entry.path), int(match[1])))
        return found

    def snapshot(self) -> dict[str, Any]:
        listed = tuple(self._listed)
        return {
            **super().snapshot(),
            "directory": str(self.directory),
            "playlist": PLAYLIST,
            "media_sequence": listed[0].sequence if listed else None,
            "segments_listed": len(listed),
            "segments_written": self._segmenter.segments,
            "queued_messages": self._writer.queued,
        }
