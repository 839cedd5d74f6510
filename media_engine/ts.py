"""MPEG-TS at packet level: sync, PIDs, continuity counters, PAT/PMT presence, bitrate.

The relay never demuxes; it only looks at the 4-byte header of each 188-byte packet (and the
adaptation field's discontinuity flag), which costs well under a microsecond a packet. It also
keeps the last PAT and PMT packets as they arrived and which PIDs carry video: a switch to this
input sends those tables first and, when planned, waits for a video random-access point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PACKET = 188
SYNC = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
# PMT stream types of video elementary streams.
MPEG2_VIDEO = frozenset({0x01, 0x02})
H264 = 0x1B
HEVC = 0x24
VIDEO_STREAM_TYPES = MPEG2_VIDEO | {0x10, H264, HEVC, 0x33}


@dataclass
class TsCounters:
    packets: int = 0
    sync_errors: int = 0
    cc_errors: int = 0
    pat_seen: int = 0
    pmt_pids: set[int] = field(default_factory=set)
    pmt_seen: int = 0
    pids: int = 0


class TsAnalyzer:
    """Counts what a decoder would trip over. Feed it each received message as it arrives."""

    __slots__ = (
        "_last_cc",
        "_pmt_pids",
        "_video_by_pmt",
        "counters",
        "last_sync_error",
        "pat_packet",
        "pmt_packets",
        "video_pids",
    )

    def __init__(self) -> None:
        self.counters = TsCounters()
        self._last_cc: dict[int, int] = {}
        self._pmt_pids: set[int] = set()
        self.last_sync_error: float | None = None
        self.pat_packet: bytes | None = None
        self.pmt_packets: dict[int, bytes] = {}
        self._video_by_pmt: dict[int, dict[int, int]] = {}
        # PID -> stream type; replaced whole, never changed in place, so other threads may read it.
        self.video_pids: dict[int, int] = {}

    def continuity(self) -> dict[int, int]:
        """The last continuity counter seen on each PID."""
        return dict(self._last_cc)

    def psi_packets(self) -> list[bytes]:
        """The last PAT and PMT packets seen, in the order a decoder needs them."""
        if self.pat_packet is None:
            return []
        return [self.pat_packet, *(self.pmt_packets[pid] for pid in sorted(self.pmt_packets) if pid in self._pmt_pids)]

    def feed(self, data: bytes | bytearray | memoryview, length: int | None = None) -> None:
        size = len(data) if length is None else length
        counters = self.counters
        last_cc = self._last_cc
        usable = size - size % PACKET
        if usable != size:
            counters.sync_errors += 1
            self.last_sync_error = time.monotonic()
        for offset in range(0, usable, PACKET):
            if data[offset] != SYNC:
                counters.sync_errors += 1
                self.last_sync_error = time.monotonic()
                continue
            b1 = data[offset + 1]
            b3 = data[offset + 3]
            pid = ((b1 & 0x1F) << 8) | data[offset + 2]
            counters.packets += 1
            if pid == NULL_PID:
                continue
            if pid == PAT_PID and b1 & 0x40:
                counters.pat_seen += 1
                self._read_pat(data, offset)
            elif pid in self._pmt_pids and b1 & 0x40:
                counters.pmt_seen += 1
                self._read_pmt(data, offset, pid)
            cc = b3 & 0x0F
            has_payload = b3 & 0x10
            previous = last_cc.get(pid)
            last_cc[pid] = cc
            if previous is None or not has_payload:
                continue
            discontinuity = b3 & 0x20 and data[offset + 4] > 0 and data[offset + 5] & 0x80
            # A repeated counter is a legal duplicate packet; anything else but +1 is a loss.
            if cc != (previous + 1) & 0x0F and cc != previous and not discontinuity:
                counters.cc_errors += 1
        counters.pids = len(last_cc)

    def _read_pat(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        start = section_start(data, offset)
        if start is None or data[start] != 0x00:
            return
        section_length = ((data[start + 1] & 0x0F) << 8) | data[start + 2]
        end = min(start + 3 + section_length - 4, offset + PACKET)
        pmt_pids = set()
        for entry in range(start + 8, end - 3, 4):
            program = (data[entry] << 8) | data[entry + 1]
            if program != 0:
                pmt_pids.add(((data[entry + 2] & 0x1F) << 8) | data[entry + 3])
        if pmt_pids:
            self._pmt_pids = pmt_pids
            self.counters.pmt_pids = pmt_pids
            self.pat_packet = bytes(data[offset : offset + PACKET])

    def _read_pmt(self, data: bytes | bytearray | memoryview, offset: int, pmt_pid: int) -> None:
        start = section_start(data, offset)
        if start is None or data[start] != 0x02 or start + 12 > offset + PACKET:
            return
        section_length = ((data[start + 1] & 0x0F) << 8) | data[start + 2]
        end = min(start + 3 + section_length - 4, offset + PACKET)
        entry = start + 12 + (((data[start + 10] & 0x0F) << 8) | data[start + 11])
        video = {}
        while entry + 5 <= end:
            if data[entry] in VIDEO_STREAM_TYPES:
                video[((data[entry + 1] & 0x1F) << 8) | data[entry + 2]] = data[entry]
            entry += 5 + (((data[entry + 3] & 0x0F) << 8) | data[entry + 4])
        if self._video_by_pmt.get(pmt_pid) != video:
            self._video_by_pmt[pmt_pid] = video
            self.video_pids = {pid: kind for streams in self._video_by_pmt.values() for pid, kind in streams.items()}
        self.pmt_packets[pmt_pid] = bytes(data[offset : offset + PACKET])


def section_start(data: bytes | bytearray | memoryview, offset: int) -> int | None:
    """Where the PSI section of a packet that starts one begins, or None if it does not fit."""
    start = offset + 4
    if data[offset + 3] & 0x20:  # adaptation field before the payload
        start += 1 + data[start]
    if start >= offset + PACKET:
        return None
    start += 1 + data[start]  # pointer field
    return start if start + 8 <= offset + PACKET else None
