"""MPEG-TS at packet level: sync, PIDs, continuity counters, PAT/PMT presence, bitrate.

The relay never demuxes; it only looks at the 4-byte header of each 188-byte packet (and the
adaptation field's discontinuity flag), which costs well under a microsecond a packet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PACKET = 188
SYNC = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF


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

    __slots__ = ("_last_cc", "_pmt_pids", "counters", "last_sync_error")

    def __init__(self) -> None:
        self.counters = TsCounters()
        self._last_cc: dict[int, int] = {}
        self._pmt_pids: set[int] = set()
        self.last_sync_error: float | None = None

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
        start = offset + 4
        if data[offset + 3] & 0x20:  # adaptation field before the payload
            start += 1 + data[start]
        start += 1 + data[start]  # pointer field
        if start + 8 > offset + PACKET or data[start] != 0x00:
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
