"""Recording output: the relayed MPEG-TS written to files in a directory, one file per period.

Each file is named by the UTC time its first packet arrived (``<name>-20261127T132500Z.ts``, so
names sort by time) and starts with the PAT, the PMT and a keyframe, so it plays on its own. A new
file starts after ``rotate_s`` seconds, at the next keyframe. Input switches and reconnects do not
start a new file: the change of time base is flagged in the stream itself, as players expect.

Retention, applied when the output starts and at every rotation, to this output's own files only:
``keep_files`` finished files are kept besides the one being written (0: no limit), and finished
files last written more than ``keep_hours`` ago are deleted (0: no limit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from datetime import UTC, datetime
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

log = logging.getLogger(__name__)

STAMP = "%Y%m%dT%H%M%SZ"
RECORDING_NAME = re.compile(r"^(?P<prefix>.+)-(?P<stamp>\d{8}T\d{6}Z)\.ts$")


def file_prefix(name: str) -> str:
    """An output's name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "recording"


def recording_name(prefix: str, started_at: float) -> str:
    return f"{prefix}-{time.strftime(STAMP, time.gmtime(started_at))}.ts"


def list_recordings(directory: str | Path, prefix: str | None = None) -> list[dict[str, Any]]:
    """The recordings in ``directory`` (of one output when ``prefix`` is given), oldest first.

    Each: ``name``, ``size`` in bytes, ``started`` and ``modified`` (aware UTC datetimes) and
    ``duration_s``, the wall-clock time from its start to its last write (the file being written
    included: it grows until the next rotation).
    """
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = RECORDING_NAME.match(entry.name)
        if match is None or (prefix is not None and match["prefix"] != prefix) or not entry.is_file():
            continue
        try:
            status = entry.stat()
        except FileNotFoundError:
            continue  # deleted by retention meanwhile
        started = datetime.strptime(match["stamp"], STAMP).replace(tzinfo=UTC)
        modified = datetime.fromtimestamp(status.st_mtime, UTC)
        found.append(
            {
                "name": entry.name,
                "size": status.st_size,
                "started": started,
                "modified": modified,
                "duration_s": round(max((modified - started).total_seconds(), 0.0), 1),
            }
        )
    found.sort(key=lambda recording: (recording["started"], recording["name"]))
    return found


class RecordingOutput(WrittenOutput):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.directory = output_directory(config)
        self.rotate_s = float_option(config, "rotate_s", 3600.0, minimum=1.0)
        self.keep_files = int_option(config, "keep_files", 0, minimum=0)
        self.keep_hours = float_option(config, "keep_hours", 0.0, minimum=0.0)
        self.prefix = file_prefix(config.name)
        self.files_started = 0
        self.files_deleted = 0
        self._segmenter = Segmenter(self, self.rotate_s, one_time_base=False)
        self._writer = BackgroundWriter(
            config.name, self.stats, self._segmenter, where=str(self.directory), prepare=self._prepare
        )

    # called from the writer thread

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._apply_retention(new=None)

    def open_segment(self, started_at: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)  # back after a clean-up removed it
        stamp = int(started_at)
        path = self.directory / recording_name(self.prefix, stamp)
        while path.exists():
            # Started again within the same second: the next free second keeps names in order.
            stamp += 1
            path = self.directory / recording_name(self.prefix, stamp)
        self._apply_retention(new=path)
        self.files_started += 1
        return path

    def segment_done(self, segment: Segment) -> None:
        name, duration, size = segment.path.name, segment.duration_s, segment.bytes
        log.info("%s: %s done (%.1f s, %d bytes)", self.config.name, name, duration, size)

    def _apply_retention(self, new: Path | None) -> None:
        if not self.keep_files and not self.keep_hours:
            return
        # The file a rotation replaces still takes its last packets: it counts as finished (the
        # newest), but is not deleted under its writer.
        current = self._segmenter.current
        open_now = {path for path in (new, current.path if current is not None else None) if path is not None}
        finished = [
            self.directory / recording["name"]
            for recording in list_recordings(self.directory, self.prefix)
            if self.directory / recording["name"] != new
        ]
        doomed = finished[: -self.keep_files] if self.keep_files else []
        if self.keep_hours:
            oldest = time.time() - self.keep_hours * 3600
            doomed += [path for path in finished if path not in doomed and _modified(path) < oldest]
        for path in doomed:
            if path not in open_now:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    self.files_deleted += 1

    def snapshot(self) -> dict[str, Any]:
        current = self._segmenter.current
        return {
            **super().snapshot(),
            "directory": str(self.directory),
            "file": current.path.name if current is not None else None,
            "file_s": round(self._segmenter.elapsed_s(), 1),
            "files_started": self.files_started,
            "files_deleted": self.files_deleted,
            "queued_messages": self._writer.queued,
        }


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
