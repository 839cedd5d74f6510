"""Cutting the relayed transport stream into files that each play on their own, off the relay's thread.

HLS segments and recording files are cut the same way, at MPEG-TS packet level:

- a file begins at a video random-access point (an IDR or parameter set, or the random-access
  flag), preceded by the latest PAT and PMT, so a decoder can start with its first packet;
- at a cut, each elementary stream moves to the new file at its next PES start: the old file ends
  every audio frame it began, and the new one holds no stray half frame;
- how long a file lasts is measured on the stream's PCR, and by the time messages arrived where
  the PCR is missing or its time base changes (an input switch flags it; a restarted encoder just
  starts another clock, which is flagged here on the way to disk).

The relay's thread only copies each message into a bounded queue; a thread of the output's own
does the parsing and the disk I/O, so a slow disk costs dropped messages, never a stalled relay.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig
from media_engine.splice import random_access_index, unit_start_index
from media_engine.stats import EndpointStats
from media_engine.ts import NULL_PID, PACKET, SYNC, TsAnalyzer, section_start

log = logging.getLogger(__name__)

QUEUE_MESSAGES = 4096  # about 5 MB: 4 s of a 10 Mb/s stream waiting for a stalled disk
TICK_S = 0.05
FLUSH_EVERY_S = 1.0  # a file being written is never more than about this much behind on disk
WRITE_BUFFER = 256 * 1024

PCR_HZ = 27_000_000
PCR_WRAP = (1 << 33) * 300
# PCRs come at most 0.1 s apart; one that moves on more than this beyond the time that passed
# between their arrivals (or goes back) starts another time base.
MAX_PCR_STEP_S = 1.0
# After a cut, the old file takes the rest of the PES each stream had begun, for at most this long.
SPLIT_WAIT_S = 0.5
# Where the PCR cannot tell, durations come from arrival times; a pause in the stream (an input
# down, a reconnect) counts at most this much, so a file is timed by what it holds.
MAX_ARRIVAL_STEP_S = 1.0
# With one time base per file (HLS), a stream silent this long (or a target duration, if longer)
# ends its file, so players get what came before the outage.
IDLE_CLOSE_S = 2.0
# A stream without random-access points the cutter can see (intra refresh) is cut anyway, at a
# picture start, this long past its target, so no file grows without end.
FORCED_CUT_AFTER_S = 30.0

CONTINUOUS, FLAGGED, JUMP = 0, 1, 2


# options and places


def output_directory(config: EndpointConfig) -> Path:
    if not config.url:
        raise ValueError(f"output {config.name!r}: no directory to write to")
    return Path(config.url)


# reading the stream


def program_streams(pmt: bytes) -> tuple[int, frozenset[int]] | None:
    """The PCR PID and the elementary stream PIDs a PMT packet lists."""
    start = section_start(pmt, 0)
    if start is None or pmt[start] != 0x02 or start + 12 > PACKET:
        return None
    section_length = ((pmt[start + 1] & 0x0F) << 8) | pmt[start + 2]
    end = min(start + 3 + section_length - 4, PACKET)
    pcr_pid = ((pmt[start + 8] & 0x1F) << 8) | pmt[start + 9]
    entry = start + 12 + (((pmt[start + 10] & 0x0F) << 8) | pmt[start + 11])
    pids = set()
    while entry + 5 <= end:
        pids.add(((pmt[entry + 1] & 0x1F) << 8) | pmt[entry + 2])
        entry += 5 + (((pmt[entry + 3] & 0x0F) << 8) | pmt[entry + 4])
    return pcr_pid, frozenset(pids)


def pcrs(data: bytes, pcr_pid: int) -> list[tuple[int, int, bool]]:
    """(packet index, PCR in 27 MHz ticks, discontinuity flag) of each PCR on ``pcr_pid``."""
    found = []
    for index, offset in enumerate(range(0, len(data) - len(data) % PACKET, PACKET)):
        if (
            data[offset] == SYNC
            and data[offset + 3] & 0x20
            and ((data[offset + 1] & 0x1F) << 8 | data[offset + 2]) == pcr_pid
            and data[offset + 4] >= 7
            and data[offset + 5] & 0x10
        ):
            at = offset + 6
            base = (data[at] << 25) | (data[at + 1] << 17) | (data[at + 2] << 9) | (data[at + 3] << 1)
            base |= data[at + 4] >> 7
            extension = ((data[at + 4] & 0x01) << 8) | data[at + 5]
            found.append((index, base * 300 + extension, bool(data[offset + 5] & 0x80)))
    return found


class StreamClock:
    """Seconds of stream time read from the PCR. Across a change of time base it moves on by the
    time that passed between arrivals, so differences of its readings stay durations."""

    __slots__ = ("_last", "_last_arrived", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._last: int | None = None
        self._last_arrived = 0.0

    @property
    def running(self) -> bool:
        return self._last is not None

    def advance(self, pcr: int, flagged: bool, arrived: float) -> int:
        """Take one PCR; says whether it goes on from the last one, or starts a flagged or an
        unflagged new time base."""
        last, gap = self._last, arrived - self._last_arrived
        self._last, self._last_arrived = pcr, arrived
        if last is None:
            return CONTINUOUS
        step = (pcr - last) % PCR_WRAP
        if flagged or step > PCR_WRAP // 2 or step / PCR_HZ > gap + MAX_PCR_STEP_S:
            self.seconds += max(gap, 0.0)
            return FLAGGED if flagged else JUMP
        self.seconds += step / PCR_HZ
        return CONTINUOUS


# cutting

Mark = tuple[int, float, int]  # packet index of a PCR, the clock after it, CONTINUOUS/FLAGGED/JUMP


@dataclass
class Segment:
    """One file being written: an HLS segment or a recording."""

    path: Path
    file: BinaryIO
    started_at: float  # UNIX time its first message reached the output
    wall_s: float  # the segmenter's arrival clock then
    stream_s: float | None  # the stream clock at its first packet; None before any PCR
    discontinuous_start: bool  # the time base changed, or files were interrupted, since the last
    time_base_changed: bool = False  # its own timestamps jump: measured by arrival times
    duration_s: float = 0.0
    bytes: int = 0


class SegmentFiles(Protocol):
    """Where a segmenter's files go: the output names them and learns when each is complete."""

    def open_segment(self, started_at: float) -> Path:
        """The path of a new file, whose first message arrived at UNIX time ``started_at``."""
        ...

    def segment_done(self, segment: Segment) -> None:
        """``segment`` is complete, closed, and its duration set."""
        ...


class Segmenter:
    """Cuts a transport stream, fed one message at a time, into files of about ``target_s`` each.

    ``one_time_base``: each file holds one time base as far as the stream allows: a change of time
    base cuts at the next random-access point, and a stream that goes silent ends its file (HLS).
    Otherwise a file goes on across both (recordings). Not thread-safe: one writer thread feeds it.
    """

    def __init__(self, files: SegmentFiles, target_s: float, *, one_time_base: bool) -> None:
        self.files = files
        self.target_s = target_s
        # Keyframes land within a PCR step or two of a whole GOP, seldom exactly on the target.
        self._cut_from_s = target_s - min(0.25, target_s / 10)
        self._forced_after_s = target_s + FORCED_CUT_AFTER_S
        self._one_time_base = one_time_base
        self._idle_close_s = max(target_s, IDLE_CLOSE_S)
        self.analyzer = TsAnalyzer()
        self.clock = StreamClock()
        self.current: Segment | None = None
        self._previous: Segment | None = None  # the last file, still taking the rest of its PES
        self._pending: set[int] = set()  # PIDs that have not started a PES since the cut
        self._split_until = 0.0
        self._pmt_seen = -1
        self._pcr_pid: int | None = None
        self._streams: frozenset[int] = frozenset()
        self._interrupted = False
        self._last_arrived: float | None = None
        self._wall_s = 0.0  # arrival time, pauses capped
        self.segments = 0

    # the writer thread's calls

    def feed(self, data: bytes, arrived: float) -> None:
        """One message, as it arrived at ``arrived`` (time.monotonic())."""
        if self._last_arrived is not None:
            self._wall_s += min(max(arrived - self._last_arrived, 0.0), MAX_ARRIVAL_STEP_S)
        self._last_arrived = arrived
        self._learn_program()
        seconds_before = self.clock.seconds
        data, marks = self._read_clock(data, arrived)
        current = self.current
        index = self._first_cut(data) if current is None else self._cut_point(current, data, marks, seconds_before)
        if index is None:
            if current is not None and any(kind != CONTINUOUS for _, _, kind in marks):
                current.time_base_changed = True
            self.analyzer.feed(data)
            self._route(data, arrived)
            return
        self._cut(data, arrived, index, marks, seconds_before)

    def finish(self) -> None:
        """Close every file, the last one as long as it got."""
        self._close_previous()
        current, self.current = self.current, None
        if current is not None:
            current.duration_s = self._elapsed(current, [], self.clock.seconds)
            self._close(current)

    def abandon(self) -> None:
        """After a write failed: drop the open files as they are and start again at the next
        random-access point."""
        for segment in (self._previous, self.current):
            if segment is not None:
                with contextlib.suppress(OSError):
                    segment.file.close()
        self._previous = self.current = None
        self._pending = set()
        self._interrupted = True

    def idle(self, now: float) -> None:
        """Nothing is waiting in the queue at ``now``."""
        last = self._last_arrived
        if self._one_time_base and self.current is not None and last is not None and now - last >= self._idle_close_s:
            self.finish()
            self._interrupted = True

    def flush(self) -> None:
        for segment in (self._previous, self.current):
            if segment is not None:
                segment.file.flush()

    def elapsed_s(self) -> float:
        """How long the file being written lasts so far."""
        current = self.current
        if current is None:
            return 0.0
        return self._elapsed(current, [], self.clock.seconds)

    # deciding

    def _learn_program(self) -> None:
        seen = self.analyzer.counters.pmt_seen
        if seen == self._pmt_seen:
            return
        self._pmt_seen = seen
        pcr_pid, streams = None, set()
        for pmt in self.analyzer.psi_packets()[1:]:
            program = program_streams(pmt)
            if program is None:
                continue
            if pcr_pid is None and program[0] != NULL_PID:
                pcr_pid = program[0]
            streams |= program[1]
        self._pcr_pid, self._streams = pcr_pid, frozenset(streams)

    def _read_clock(self, data: bytes, arrived: float) -> tuple[bytes, list[Mark]]:
        if self._pcr_pid is None:
            return data, []
        marks: list[Mark] = []
        patched: bytearray | None = None
        for index, pcr, flagged in pcrs(data, self._pcr_pid):
            kind = self.clock.advance(pcr, flagged, arrived)
            if kind == JUMP:
                # A restarted encoder: flag its new clock in the file, as a switch would have.
                patched = patched if patched is not None else bytearray(data)
                patched[index * PACKET + 5] |= 0x80
            marks.append((index, self.clock.seconds, kind))
        return (bytes(patched) if patched is not None else data), marks

    def _first_cut(self, data: bytes) -> int | None:
        if len(self.analyzer.psi_packets()) < 2:
            return None  # no PAT and PMT yet: a file could not say what it holds
        return random_access_index(data, len(data), self.analyzer.video_pids)

    def _cut_point(self, current: Segment, data: bytes, marks: list[Mark], seconds_before: float) -> int | None:
        video = self.analyzer.video_pids
        if self._one_time_base:
            broke = next((index for index, _, kind in marks if kind != CONTINUOUS), None)
            if current.time_base_changed or broke is not None:
                index = random_access_index(data, len(data), video)
                if index is not None and (current.time_base_changed or (broke is not None and broke <= index)):
                    return index
        elapsed = self._elapsed(current, marks, seconds_before)
        if elapsed < self._cut_from_s:
            return None
        index = random_access_index(data, len(data), video)
        if index is not None and self._elapsed(current, marks, seconds_before, upto=index) >= self._cut_from_s:
            return index
        if elapsed >= self._forced_after_s:
            return unit_start_index(data, len(data), video) if video else 0
        return None

    def _elapsed(self, segment: Segment, marks: list[Mark], seconds_before: float, upto: int | None = None) -> float:
        """How long ``segment`` lasts if cut at packet ``upto`` of this message (None: after it).
        A change of time base at the cut packet itself starts the next file, not this one."""
        taken = [mark for mark in marks if upto is None or mark[0] <= upto]
        broken = segment.time_base_changed or any(
            kind != CONTINUOUS and (upto is None or index < upto) for index, _, kind in taken
        )
        if segment.stream_s is None or broken:
            return self._wall_s - segment.wall_s
        return (taken[-1][1] if taken else seconds_before) - segment.stream_s

    # writing

    def _cut(self, data: bytes, arrived: float, index: int, marks: list[Mark], seconds_before: float) -> None:
        self._close_previous()
        old = self.current
        split = index * PACKET
        head, tail = data[:split], data[split:]
        at_cut = [seconds for at, seconds, _ in marks if at <= index]
        stream_s = (at_cut[-1] if at_cut else seconds_before) if self.clock.running else None
        discontinuous = self._interrupted
        self.analyzer.feed(head)
        if old is not None:
            old.duration_s = self._elapsed(old, marks, seconds_before, upto=index)
            old.time_base_changed |= any(kind != CONTINUOUS and at < index for at, _, kind in marks)
            discontinuous |= old.time_base_changed or any(kind != CONTINUOUS and at == index for at, _, kind in marks)
            self._write(old, head)
        psi = b"".join(self.analyzer.psi_packets())
        started_at = time.time() - (time.monotonic() - arrived)
        path = self.files.open_segment(started_at)
        new = Segment(
            path=path,
            file=path.open("wb", buffering=WRITE_BUFFER),
            started_at=started_at,
            wall_s=self._wall_s,
            stream_s=stream_s,
            discontinuous_start=discontinuous,
            time_base_changed=any(kind != CONTINUOUS and at > index for at, _, kind in marks),
        )
        self._interrupted = False
        self.segments += 1
        self._write(new, psi)
        self._previous, self.current = old, new
        self._pending = set(self._streams)
        self._split_until = arrived + SPLIT_WAIT_S
        self.analyzer.feed(tail)
        self._route(tail, arrived)

    def _route(self, data: bytes, arrived: float) -> None:
        """Packets after a cut: each elementary stream goes on in the old file until its next PES
        starts, the rest goes to the new one. Before the first file, nothing is kept."""
        current = self.current
        if current is None or not data:
            return
        if self._pending and arrived >= self._split_until:
            self._close_previous()
        pending = self._pending
        if not pending:
            self._write(current, data)
            return
        previous = self._previous
        new, old = bytearray(), bytearray()
        for offset in range(0, len(data) - len(data) % PACKET, PACKET):
            pid = ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]
            if pid in pending:
                if not data[offset + 1] & 0x40:
                    old += data[offset : offset + PACKET]
                    continue
                pending.discard(pid)
            new += data[offset : offset + PACKET]
        if old and previous is not None:
            self._write(previous, bytes(old))
        self._write(current, bytes(new))
        if not pending:
            self._close_previous()

    def _write(self, segment: Segment, data: bytes) -> None:
        if data:
            segment.file.write(data)
            segment.bytes += len(data)

    def _close_previous(self) -> None:
        previous, self._previous = self._previous, None
        self._pending = set()
        if previous is not None:
            self._close(previous)

    def _close(self, segment: Segment) -> None:
        segment.file.close()
        self.files.segment_done(segment)


# the queue between the relay's thread and the disk


def copy_message(data: ctypes.Array | bytes, length: int) -> bytes:
    """A copy that outlives the call: the relay reuses its buffers."""
    if isinstance(data, ctypes.Array):
        return ctypes.string_at(ctypes.addressof(data), length)
    if isinstance(data, bytes) and len(data) == length:
        return data
    return bytes(memoryview(data)[:length])


class BackgroundWriter:
    """Feeds a segmenter from a thread of its own. ``offer`` only copies the message into a bounded
    queue and returns; a full queue (a disk that cannot keep up) drops the message and counts it.

    A failed write is reported on the output (state ``error``); after a pause that grows while the
    failures go on (the queue meanwhile drops, and counts), files start again at the next
    random-access point. The state is ``connected`` while a file is being written.
    """

    def __init__(
        self,
        name: str,
        stats: EndpointStats,
        segmenter: Segmenter,
        *,
        where: str,
        prepare: Callable[[], None],
        limit: int = QUEUE_MESSAGES,
    ) -> None:
        self.name = name
        self.stats = stats
        self.segmenter = segmenter
        self.where = where
        self._prepare = prepare
        self._limit = limit
        self._queue: deque[tuple[float, bytes]] = deque()
        self._backoff = Backoff(first=0.5, longest=10.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        if len(self._queue) >= self._limit:
            self.stats.dropped_messages += 1
            return
        self._queue.append((time.monotonic(), copy_message(data, length)))

    def start(self) -> None:
        self.stats.state, self.stats.reason = "waiting", "waiting for a keyframe"
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{self.name} writer")
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, close the files, and return when the thread is done."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        self._guarded(self._prepare)
        next_flush = time.monotonic() + FLUSH_EVERY_S
        queue = self._queue
        while True:
            stopping = self._stop.is_set()
            while queue:
                arrived, data = queue.popleft()
                if not self._guarded(self.segmenter.feed, data, arrived):
                    # A full disk or a missing mount fails again at once: no file per keyframe.
                    if not self._backoff.wait(self._stop):
                        stopping = True
                    continue
                if self.segmenter.current is not None:
                    self.stats.meter.add(len(data))
                    if self.stats.state != "connected":
                        self.stats.connected(self.where)
                        self._backoff.reset()
            now = time.monotonic()
            if not queue:
                self._guarded(self.segmenter.idle, now)
            if now >= next_flush:
                self._guarded(self.segmenter.flush)
                next_flush = now + FLUSH_EVERY_S
            if stopping:
                break
            self._stop.wait(TICK_S)
        self._guarded(self.segmenter.finish)
        self.stats.disconnected("stopped", "")

    def _guarded(self, call: Callable[..., None], *args: object) -> bool:
        try:
            call(*args)
        except Exception as exc:
            # The relay and the other outputs go on; this one tries again at the next keyframe.
            unexpected = not isinstance(exc, OSError)
            reason = f"{type(exc).__name__}: {exc}" if unexpected else str(exc)
            if reason != self.stats.reason:
                log.warning("%s: writing to %s failed: %s", self.name, self.where, reason, exc_info=unexpected)
            self.segmenter.abandon()
            self.stats.disconnected("error", reason)
            return False
        return True
