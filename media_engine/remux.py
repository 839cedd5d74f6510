"""Remuxing without decoding: PyAV packets into a live MPEG-TS held in memory, on a timeline that
never goes back, sent in real time by the stream's own PCRs.

Shared by the slate (media_engine.slate), the file and HLS inputs, and RTMP (media_engine.rtmp): the
ingest's remux to MPEG-TS, and the push output's to FLV, which uses the timeline only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from itertools import pairwise
from typing import Any

import av

from media_engine.ts import PACKET, SYNC

log = logging.getLogger(__name__)

MESSAGE = 7 * PACKET
# PCRs run this far ahead of decoding times, so a decoder always holds this much (as ffmpeg does).
MUX_DELAY_US = 700_000
# Behind schedule by more than this (a stalled machine or source), the stream carries on from now
# instead of catching up in a burst that a receiver's buffer could not take.
MAX_LATE_S = 1.0
# Muxing this many packets without a whole message whose time is known means no PCR is coming.
_MAX_MUXED_WITHOUT_PCR = 10_000
# A stream not seen since another stream's jump may land this far behind its own previous packet
# and still take that same jump (when no gap limit says how far).
_STALE_SLACK_S = Fraction(1)
_PCR_WRAP = (1 << 33) * 300
_PCR_HZ = 27_000_000


def open_ts_muxer(writer: Any, service: str) -> Any:
    """An MPEG-TS muxer writing into ``writer`` (anything with ``write(bytes)``)."""
    out = av.open(
        writer,
        "w",
        format="mpegts",
        container_options={
            "flush_packets": "1",  # hand each packet's TS bytes over at once
            "max_delay": str(MUX_DELAY_US),
            "pcr_period": "20",  # ms: in practice a PCR with every video frame
            "pat_period": "0.1",  # PAT and PMT ten times a second, so a switch or a player starts fast
            # One PES per audio frame: the bytes then flow evenly, so no message waits long for
            # its last packet (grouped audio left gaps of 200 ms between messages).
            "pes_payload_size": "0",
        },
    )
    out.metadata["service_provider"] = "Vajra Cast"
    out.metadata["service_name"] = service
    return out


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A reason an operator can read: FFmpeg's own words ("Server returned 404 Not Found"), without
    the URL, which may carry a token."""
    if isinstance(exc, av.error.ExitError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "interrupted"
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


class Timeline:
    """Rewrites packet timestamps onto one timeline that never goes back: what a muxer needs after
    a source restarted, a file looped or a failover switched encoders.

    All streams share one offset, so they stay in sync with each other. A stream whose timestamps
    go back, or leap ahead by more than ``max_gap_s`` (None: any leap is kept), is a discontinuity:
    the offset changes so that the packet follows on from the latest end placed on any stream. The
    other streams jumped too, but their first packets after it may land a little before their own
    previous ones (a muxer interleaves audio and video up to ~0.7 s apart): the offset then moves on
    a little more, so each stream follows on from its own last packet and they stay in sync.
    """

    def __init__(self, *, max_gap_s: float | None = 1.0, start_at_zero: bool = False) -> None:
        self._max_gap = None if max_gap_s is None else Fraction(max_gap_s)
        # Seconds added to every timestamp; None until the next packet sets it.
        self._offset: Fraction | None = None if start_at_zero else Fraction(0)
        self._end = Fraction(0)  # seconds: the latest end of a packet placed, on any stream
        self._epoch = 0  # counts offset changes for a discontinuity
        # Per stream: the last decoding time placed and its duration (its time base), the epoch then.
        self._last: dict[int, tuple[int, int, int]] = {}
        self.discontinuities = 0

    def splice(self, start_s: Fraction | None = None) -> None:
        """What comes next is a new run (a file played again): it continues right after what was
        placed so far. ``start_s``: the run's earliest timestamp in seconds, when known; otherwise
        its first packet takes the place."""
        self._offset = None if start_s is None else self._end - start_s
        self._epoch += 1

    def place(self, packet: av.Packet) -> bool:
        """Move ``packet`` onto the timeline (its own time base). False for a packet with no
        timestamp at all, which cannot be placed and is best dropped."""
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is None or packet.time_base is None:
            return False
        pts = packet.pts if packet.pts is not None else dts
        base = Fraction(packet.time_base)
        if self._offset is None:
            self._offset = self._end - dts * base
        index = packet.stream_index
        out = dts + round(self._offset / base)
        last = self._last.get(index)
        if last is not None:
            last_dts, last_duration, epoch = last
            gap = (out - last_dts) * base
            if epoch != self._epoch and gap <= 0 and -gap <= (self._max_gap or _STALE_SLACK_S):
                # This stream's first packet since another stream's jump: take the same jump,
                # and as much more as it takes to follow on from its own last packet.
                follow = last_dts + max(last_duration, 1)
                self._offset += (follow - out) * base
                out = follow
            elif gap < 0 or (self._max_gap is not None and gap > self._max_gap):
                self._offset += self._end - out * base
                self._epoch += 1
                self.discontinuities += 1
                out = dts + round(self._offset / base)
            if out <= last_dts:
                out = last_dts + 1
        shift = out - dts
        packet.dts = out
        packet.pts = max(pts + shift, out)
        duration = packet.duration or (out - last[0] if last is not None else 0)
        self._last[index] = (out, duration, self._epoch)
        self._end = max(self._end, (out + duration) * base)
        return True


class Pacer:
    """Takes the muxer's bytes and cuts them into messages, each due when its last byte would
    leave a real-time sender: bytes between two PCRs are spread evenly over the time between."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._read = 0  # where the next message starts
        self._scanned = 0  # where the next packet to look at for a PCR starts
        self._marks: deque[tuple[int, float]] = deque()  # (offset, seconds since the first PCR)
        self._last_pcr: int | None = None
        self._clock = 0.0

    def write(self, data: bytes) -> int:
        self._data += data
        self._scan()
        return len(data)

    def _scan(self) -> None:
        data, offset = self._data, self._scanned
        while offset + PACKET <= len(data):
            if data[offset] != SYNC:
                raise ValueError("the muxer wrote a packet without a sync byte")
            # An adaptation field long enough for a PCR, with the PCR flag set.
            if data[offset + 3] & 0x20 and data[offset + 4] >= 7 and data[offset + 5] & 0x10:
                self._mark(offset, data[offset + 6 : offset + 12])
            offset += PACKET
        self._scanned = offset

    def _mark(self, offset: int, field: bytes | bytearray) -> None:
        base = field[0] << 25 | field[1] << 17 | field[2] << 9 | field[3] << 1 | field[4] >> 7
        pcr = base * 300 + ((field[4] & 1) << 8 | field[5])
        if self._last_pcr is None:
            self._marks.append((0, 0.0))  # what came before the first PCR is due with it
        else:
            # PCRs wrap after 26.5 hours; the clock here does not.
            self._clock += (pcr - self._last_pcr) % _PCR_WRAP / _PCR_HZ
        self._last_pcr = pcr
        self._marks.append((offset, self._clock))

    def next_due(self) -> float | None:
        """When the next whole message is due (seconds since the first PCR), or None until the
        muxer has written past it."""
        end = self._read + MESSAGE
        if end > self._scanned:
            return None
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= self._read:
            marks.popleft()
        for (start, start_s), (stop, stop_s) in pairwise(marks):
            if stop >= end:
                return stop_s if stop == start else start_s + (stop_s - start_s) * (end - start) / (stop - start)
        return None

    def take(self) -> bytes:
        message = bytes(self._data[self._read : self._read + MESSAGE])
        self._read += MESSAGE
        if self._read >= 1 << 16:  # drop what was sent now and then, not on every message
            read = self._read
            del self._data[:read]
            self._read, self._scanned = 0, self._scanned - read
            self._marks = deque((offset - read, when) for offset, when in self._marks)
        return message

    def drain(self) -> Iterator[bytes]:
        """Everything not taken yet, in messages; the last may be shorter."""
        end = self._scanned
        for start in range(self._read, end, MESSAGE):
            yield bytes(self._data[start : min(start + MESSAGE, end)])
        self._read = end


def play(
    mux_next: Callable[[], bool],
    pacer: Pacer,
    send: Callable[[bytes], None],
    stop: threading.Event,
    name: str,
) -> bool:
    """Send the pacer's messages as they fall due, calling ``mux_next`` (mux one more packet into
    the pacer) whenever the next message is not written yet. Returns True once ``stop`` is set,
    False as soon as ``mux_next`` returns False (the source ended)."""
    origin: float | None = None  # when stream time 0 is due
    muxed = 0
    while not stop.is_set():
        due = pacer.next_due()
        if due is None:
            if not mux_next():
                return False
            muxed += 1
            if muxed > _MAX_MUXED_WITHOUT_PCR:
                raise RuntimeError("the muxer wrote no PCR")
            continue
        muxed = 0
        now = time.monotonic()
        if origin is None:
            origin = now - due
        late = now - (origin + due)
        if late < 0:
            stop.wait(-late)
            continue
        if late > MAX_LATE_S:
            log.warning("%s: %.1f s behind, carrying on from now", name, late)
            origin += late
        send(pacer.take())
    return True


def play_then_flush(
    mux_next: Callable[[], bool],
    pacer: Pacer,
    send: Callable[[bytes], None],
    stop: threading.Event,
    name: str,
    close_muxer: Callable[[], None],
) -> bool:
    """``play``, then close the muxer and send what it still held at once, so that the stream ends
    on whole frames rather than on what a muxer gathers into longer PES packets. Returns what
    ``play`` returned."""
    stopped = play(mux_next, pacer, send, stop, name)
    close_muxer()
    for message in pacer.drain():
        send(message)
    return stopped
