"""One continuous transport stream out of several inputs, switched at packet level.

After a switch the decoder downstream must carry on as if nothing but a time-base change
happened: each PID's continuity counter goes on from the last one sent, the new input's PAT and
PMT come first, each PID starts at the beginning of a PES or section (never mid-way), and the
first PCR of the new input is flagged as a discontinuity so the decoder re-locks its clock.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping

from media_engine.ts import H264, HEVC, MPEG2_VIDEO, NULL_PID, PACKET, SYNC

_OUT_PACKETS = 8  # one SRT message holds at most 7 packets; room for one more never hurts
_H264_RANDOM_ACCESS = frozenset({5, 7})  # IDR slice, sequence parameter set
_HEVC_RANDOM_ACCESS = frozenset({16, 17, 18, 19, 20, 21, 32})  # IRAP slices, VPS
_MPEG2_SEQUENCE_HEADER = 0xB3

Chunk = tuple[ctypes.Array | bytes, int]


class TsSplicer:
    """Rewrites messages on their way to the outputs. Before the first switch it passes them
    through untouched; after it, every packet's counter is rebased. Not thread-safe: the switcher
    calls it under its lock."""

    def __init__(self) -> None:
        self._last_out: dict[int, int] = {}  # PID -> last continuity counter sent
        self._offset: dict[int, int] = {}  # PID -> added to the current input's counter
        self._started: set[int] = set()  # PIDs of the current input sent since the switch
        self._pcr_pending = False
        self._spliced = False
        self._video: dict[int, int] = {}
        self._buffer = ctypes.create_string_buffer(_OUT_PACKETS * PACKET)
        self._view = memoryview(self._buffer).cast("B")
        self._psi = ctypes.create_string_buffer(_OUT_PACKETS * PACKET)
        self._psi_view = memoryview(self._psi).cast("B")

    def switch(
        self, psi_packets: list[bytes], passed_through: Mapping[int, int], video_pids: Mapping[int, int]
    ) -> Chunk | None:
        """Start splicing a new input in. Returns its PAT and PMT, rebased, to send first.

        ``passed_through`` is the last counter per PID of the input on air until now; only the first
        switch needs it, as until then messages went out untouched and uncounted here. The new
        input's ``video_pids`` resume at a random-access point: until then decoders hold the last
        picture instead of drawing the new input's P-frames over it.
        """
        if not self._spliced:
            self._last_out.update(passed_through)
        self._spliced = True
        self._offset.clear()
        self._started.clear()
        self._video = dict(video_pids)
        self._pcr_pending = True
        length = 0
        for packet in psi_packets[:_OUT_PACKETS]:
            self._psi_view[length : length + PACKET] = packet
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            cc = packet[3] & 0x0F
            self._offset[pid] = self._rebase(pid, cc)
            self._psi_view[length + 3] = (packet[3] & 0xF0) | ((cc + self._offset[pid]) & 0x0F)
            self._last_out[pid] = self._psi_view[length + 3] & 0x0F
            self._started.add(pid)
            length += PACKET
        return (self._psi, length) if length else None

    def _rebase(self, pid: int, cc: int) -> int:
        last = self._last_out.get(pid)
        return 0 if last is None else (last + 1 - cc) & 0x0F

    def process(self, data: ctypes.Array | bytes, length: int, first: int = 0, end: int | None = None) -> Chunk:
        """The message to send for one input message, packets ``first`` up to ``end``."""
        if end is not None:
            length = min(length, end * PACKET)
        if not self._spliced and first == 0:
            return data, length
        source = _packets(data)
        out = self._view
        size = 0
        for offset in range(first * PACKET, length - length % PACKET, PACKET):
            if source[offset] != SYNC:
                continue
            b1 = source[offset + 1]
            pid = ((b1 & 0x1F) << 8) | source[offset + 2]
            if pid != NULL_PID and pid not in self._started:
                if not b1 & 0x40:
                    continue  # the rest of a PES or section that began before the switch
                stream_type = self._video.get(pid)
                if stream_type is not None and not _is_random_access(source, offset, stream_type):
                    continue
                self._offset[pid] = self._rebase(pid, source[offset + 3] & 0x0F)
                self._started.add(pid)
            if size + PACKET > len(out):
                break
            out[size : size + PACKET] = source[offset : offset + PACKET]
            if pid != NULL_PID:
                b3 = source[offset + 3]
                cc = (b3 + self._offset[pid]) & 0x0F
                out[size + 3] = (b3 & 0xF0) | cc
                self._last_out[pid] = cc
                if self._pcr_pending and b3 & 0x20 and out[size + 4] > 0 and out[size + 5] & 0x10:
                    out[size + 5] |= 0x80  # discontinuity_indicator: a new time base starts here
                    self._pcr_pending = False
            size += PACKET
        return self._buffer, size


def continuity_before(
    counted: Mapping[int, int], data: ctypes.Array | bytes, length: int, first: int
) -> dict[int, int]:
    """The last counter per PID as of packet ``first`` of a message whose every packet is already
    in ``counted``: what went out when the message is cut there."""
    source = _packets(data)
    before = dict(counted)
    seen: set[int] = set()
    for offset in range(first * PACKET, length - length % PACKET, PACKET):
        pid = ((source[offset + 1] & 0x1F) << 8) | source[offset + 2]
        if source[offset] != SYNC or pid in seen:
            continue
        seen.add(pid)
        b3 = source[offset + 3]
        before[pid] = (b3 - 1) & 0x0F if b3 & 0x10 else b3 & 0x0F
    return before


def _packets(data: ctypes.Array | bytes) -> memoryview:
    return memoryview(data).cast("B") if isinstance(data, ctypes.Array) else memoryview(data)


def unit_start_index(data: ctypes.Array | bytes, length: int, pids: Mapping[int, int]) -> int | None:
    """The index of the first packet in a message that starts a PES on one of ``pids``: where the
    input on air can stop without cutting a picture in two."""
    source = _packets(data)
    for index, offset in enumerate(range(0, length - length % PACKET, PACKET)):
        b1 = source[offset + 1]
        if source[offset] == SYNC and b1 & 0x40 and ((b1 & 0x1F) << 8 | source[offset + 2]) in pids:
            return index
    return None


def random_access_index(data: ctypes.Array | bytes, length: int, video_pids: Mapping[int, int]) -> int | None:
    """The index of the first packet in a message where a decoder can start: a video packet that
    starts a PES and is flagged random-access or carries an IDR or a parameter set. Without known
    video PIDs (audio-only or no PMT yet) any PES start will do."""
    source = _packets(data)
    for index, offset in enumerate(range(0, length - length % PACKET, PACKET)):
        b1 = source[offset + 1]
        if source[offset] != SYNC or not b1 & 0x40:
            continue
        pid = ((b1 & 0x1F) << 8) | source[offset + 2]
        if not video_pids:
            if pid != NULL_PID and pid > 0x1F:
                return index
            continue
        stream_type = video_pids.get(pid)
        if stream_type is not None and _is_random_access(source, offset, stream_type):
            return index
    return None


def _is_random_access(source: memoryview, offset: int, stream_type: int) -> bool:
    """Whether a video packet that starts a PES starts a picture a decoder can begin with."""
    b3 = source[offset + 3]
    payload = offset + 4
    if b3 & 0x20:
        if source[payload] > 0 and source[payload + 1] & 0x40:
            return True  # random_access_indicator
        payload += 1 + source[payload]
    return _starts_with_random_access(bytes(source[payload : offset + PACKET]), stream_type)


def _starts_with_random_access(pes: bytes, stream_type: int) -> bool:
    """Whether the first packet of a video PES starts a picture a decoder can begin with."""
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
        return False
    body = pes[9 + pes[8] :]
    at = body.find(b"\x00\x00\x01")
    while 0 <= at < len(body) - 3:
        code = body[at + 3]
        if stream_type == H264 and code & 0x1F in _H264_RANDOM_ACCESS:
            return True
        if stream_type == HEVC and (code >> 1) & 0x3F in _HEVC_RANDOM_ACCESS:
            return True
        if stream_type in MPEG2_VIDEO and code == _MPEG2_SEQUENCE_HEADER:
            return True
        at = body.find(b"\x00\x00\x01", at + 3)
    return False
