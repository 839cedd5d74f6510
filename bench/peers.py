"""Live peers for the failover bench: processes stopped by PID, readers that stamp what a process
writes with the time it arrived, a UDP link that can be cut on a schedule, and just enough of an
MPEG-TS reader to tell encoders apart and check a splice.

The TS reader shares no code with ``media_engine`` on purpose: it is the second opinion on what the
relay's splicer wrote.
"""

from __future__ import annotations

import bisect
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------


def free_udp_ports(count: int) -> list[int]:
    """Ports the kernel has just handed out, all different (held open together while picked)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, alive: Iterable[subprocess.Popen] = ()
) -> float:
    """Poll until ``condition()``; returns the seconds it took. Fails early when a process died."""
    started = time.monotonic()
    watched = list(alive)
    while not condition():
        for process in watched:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: {process.args[0]} (PID {process.pid}) exited with {process.returncode}")
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# timestamped readers
# --------------------------------------------------------------------------------------------------


class TimedStream:
    """Reads a process's standard output from a thread, stamping each chunk with time.monotonic()."""

    def __init__(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        self.process = process
        self.buffer = bytearray()
        self.times: list[float] = []
        self.ends: list[int] = []  # len(buffer) after each chunk
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"stdout of {process.pid}")
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while chunk := os.read(descriptor, 1 << 16):
            arrived = time.monotonic()
            with self._lock:
                self.buffer += chunk
                self.times.append(arrived)
                self.ends.append(len(self.buffer))
        self.process.stdout.close()

    def join(self, timeout_s: float = 5.0) -> None:
        self._thread.join(timeout_s)

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.buffer)

    def tail(self, size: int) -> tuple[int, bytes]:
        """(absolute offset, bytes) of about the last ``size`` bytes, starting on a packet boundary."""
        with self._lock:
            start = max(0, len(self.buffer) - size)
            start -= start % TS_PACKET
            return start, bytes(self.buffer[start:])

    def offset_at(self, moment: float) -> int:
        """How many bytes had arrived by ``moment``."""
        with self._lock:
            index = bisect.bisect_right(self.times, moment)
            return self.ends[index - 1] if index else 0

    def time_at(self, offset: int) -> float | None:
        """When the byte at capture ``offset`` arrived."""
        with self._lock:
            index = bisect.bisect_right(self.ends, offset)
            return self.times[index] if index < len(self.times) else None

    def largest_gap(self, since: float, until: float) -> tuple[float, int, float] | None:
        """The longest silence between chunks that overlaps [since, until], as (seconds, offset of the
        first byte after it, when it ended). A silence still running at ``until`` counts up to then."""
        with self._lock:
            times, ends = list(self.times), list(self.ends)
        best: tuple[float, int, float] | None = None
        for number in range(1, len(times)):
            earlier, later = times[number - 1], times[number]
            if later < since or earlier > until:
                continue
            if best is None or later - earlier > best[0]:
                best = (later - earlier, ends[number - 1], later)
        if times and times[-1] <= until and (best is None or until - times[-1] > best[0]):
            best = (until - times[-1], ends[-1], until)
        return best


class TimedLines:
    """Reads a process's standard error line by line from a thread, stamping each line."""

    def __init__(self, process: subprocess.Popen, log: Path | None = None) -> None:
        assert process.stderr is not None
        self.process = process
        self.lines: list[tuple[float, str]] = []
        self._log = log
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"stderr of {process.pid}")
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        sink = self._log.open("w") if self._log is not None else None
        try:
            for raw in self.process.stderr:
                arrived = time.monotonic()
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with self._lock:
                    self.lines.append((arrived, line))
                if sink is not None:
                    sink.write(f"{arrived:.3f} {line}\n")
        finally:
            self.process.stderr.close()
            if sink is not None:
                sink.close()

    def join(self, timeout_s: float = 5.0) -> None:
        self._thread.join(timeout_s)

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.lines)


# --------------------------------------------------------------------------------------------------
# a UDP link that can be cut on a schedule
# --------------------------------------------------------------------------------------------------


class FlappingLink:
    """Relays one client's UDP datagrams to ``forward_port`` and the replies back. While flapping,
    every ``period_s`` it drops everything, both ways, for the first ``down_s``: an encoder whose
    uplink keeps cutting out. One thread; at a few hundred datagrams per second that is plenty."""

    def __init__(self, forward_port: int, period_s: float = 1.0, down_s: float = 0.5) -> None:
        self.forward = (HOST, forward_port)
        self.period_s = period_s
        self.down_s = down_s
        self.forwarded = 0
        self.dropped = 0
        self._client: tuple[str, int] | None = None
        self._flap_from: float | None = None
        self._stop = threading.Event()
        self._client_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._client_side.bind((HOST, 0))
        self._server_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._server_side.bind((HOST, 0))
        for sock in (self._client_side, self._server_side):
            sock.setblocking(False)
        self.port = self._client_side.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True, name="flapping link")
        self._thread.start()

    def start_flapping(self) -> float:
        self._flap_from = time.monotonic()
        return self._flap_from

    def stop_flapping(self) -> float:
        self._flap_from = None
        return time.monotonic()

    def _cut(self, now: float) -> bool:
        start = self._flap_from
        return start is not None and (now - start) % self.period_s < self.down_s

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._client_side, selectors.EVENT_READ, True)
            selector.register(self._server_side, selectors.EVENT_READ, False)
            while not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    self._drain(key.fileobj, upstream=key.data)  # type: ignore[arg-type]

    def _drain(self, sock: socket.socket, *, upstream: bool) -> None:
        while True:
            try:
                payload, sender = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed by close()
            if upstream:
                self._client = self._client or sender
                target, out = self.forward, self._server_side
            else:
                target, out = self._client, self._client_side
            if target is None:
                continue
            if self._cut(time.monotonic()):
                self.dropped += 1
                continue
            try:
                out.sendto(payload, target)
                self.forwarded += 1
            except OSError:
                self.dropped += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client_side.close()
        self._server_side.close()


# --------------------------------------------------------------------------------------------------
# MPEG-TS: packets, continuity, PAT and PMT
# --------------------------------------------------------------------------------------------------

TS_PACKET = 188
TS_SYNC = 0x47
PAT_PID = 0
NULL_PID = 0x1FFF


@dataclass(frozen=True)
class TsPacket:
    offset: int  # of the sync byte, in the whole capture
    pid: int
    pusi: bool
    cc: int
    has_payload: bool
    discontinuity: bool
    has_pcr: bool
    payload: bytes


def parse_ts(data: bytes | bytearray, base: int = 0) -> list[TsPacket]:
    """The packets in ``data``, which starts on a packet boundary at capture offset ``base``. A byte
    that is not a sync byte where one is due is skipped up to the next pair of sync bytes."""
    packets = []
    at, end = 0, len(data) - TS_PACKET
    while at <= end:
        if data[at] != TS_SYNC:
            following = at + 1
            while following <= end and not (
                data[following] == TS_SYNC and (following + TS_PACKET > end or data[following + TS_PACKET] == TS_SYNC)
            ):
                following += 1
            at = following
            continue
        raw = data[at : at + TS_PACKET]
        control = (raw[3] >> 4) & 0x3
        adaptation = bool(control & 0x2) and raw[4] > 0
        flags = raw[5] if adaptation else 0
        start = 4 + (1 + raw[4] if control & 0x2 else 0)
        packets.append(
            TsPacket(
                offset=base + at,
                pid=((raw[1] & 0x1F) << 8) | raw[2],
                pusi=bool(raw[1] & 0x40),
                cc=raw[3] & 0xF,
                has_payload=bool(control & 0x1),
                discontinuity=bool(flags & 0x80),
                has_pcr=bool(flags & 0x10),
                payload=bytes(raw[start:]) if control & 0x1 else b"",
            )
        )
        at += TS_PACKET
    return packets


def continuity_errors(packets: Iterable[TsPacket]) -> list[TsPacket]:
    """Packets whose continuity counter breaks ISO/IEC 13818-1 2.4.3.3: a payload packet must count
    one up from its PID's previous one unless it is a single exact repeat; a packet without payload
    keeps the counter; a set discontinuity_indicator excuses. Null packets do not count."""
    last: dict[int, tuple[int, bytes, bool]] = {}  # PID -> (cc, payload, that packet was a repeat)
    errors = []
    for packet in packets:
        if packet.pid == NULL_PID:
            continue
        previous = last.get(packet.pid)
        repeat = False
        if previous is not None and not packet.discontinuity:
            cc, payload, was_repeat = previous
            if not packet.has_payload:
                ok = packet.cc == cc
            elif packet.cc == cc and packet.payload == payload and not was_repeat:
                ok = repeat = True
            else:
                ok = packet.cc == (cc + 1) % 16
            if not ok:
                errors.append(packet)
        if packet.has_payload or previous is None:
            last[packet.pid] = (packet.cc, packet.payload, repeat)
    return errors


def _section(packet: TsPacket, table_id: int) -> bytes | None:
    """The section starting in this packet, if it is of ``table_id`` (PSI fits one packet here)."""
    if not packet.pusi or not packet.payload:
        return None
    section = packet.payload[1 + packet.payload[0] :]
    return section if len(section) >= 12 and section[0] == table_id else None


def pat(packet: TsPacket) -> tuple[int, dict[int, int]] | None:
    """(transport_stream_id, {program_number: PMT PID}) if a PAT starts in this packet."""
    if packet.pid != PAT_PID:
        return None
    section = _section(packet, 0x00)
    if section is None:
        return None
    length = ((section[1] & 0x0F) << 8) | section[2]
    body = section[8 : 3 + length - 4]
    programs = {}
    for at in range(0, len(body) - 3, 4):
        number = int.from_bytes(body[at : at + 2], "big")
        if number:
            programs[number] = int.from_bytes(body[at + 2 : at + 4], "big") & 0x1FFF
    return int.from_bytes(section[3:5], "big"), programs


def pmt_program(packet: TsPacket, pmt_pids: Iterable[int]) -> int | None:
    """The program_number if a PMT starts in this packet on one of ``pmt_pids``."""
    if packet.pid not in pmt_pids:
        return None
    section = _section(packet, 0x02)
    return None if section is None else int.from_bytes(section[3:5], "big")


def latest_tsid(stream: TimedStream, window: int = 64 * 1024) -> int | None:
    """The transport_stream_id of the last PAT among the last ``window`` bytes received."""
    base, data = stream.tail(window)
    found = None
    for packet in parse_ts(data, base):
        table = pat(packet)
        if table is not None:
            found = table[0]
    return found


def udp_bound(port: int) -> bool:
    """Whether some socket on this machine is bound to this UDP port."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as lines:
                next(lines)
                if any(int(line.split()[1].rpartition(":")[2], 16) == port for line in lines):
                    return True
        except FileNotFoundError:
            continue
    return False


VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x1B, 0x24})  # MPEG-1/2 video, H.264, HEVC


def pmt_video_pids(packet: TsPacket, pmt_pids: Iterable[int]) -> set[int]:
    """The video PIDs a PMT starting in this packet lists (empty if it is no PMT)."""
    if packet.pid not in pmt_pids:
        return set()
    section = _section(packet, 0x02)
    if section is None:
        return set()
    end = 3 + (((section[1] & 0x0F) << 8) | section[2]) - 4
    at = 12 + (((section[10] & 0x0F) << 8) | section[11])
    found = set()
    while at + 5 <= end:
        if section[at] in VIDEO_STREAM_TYPES:
            found.add(((section[at + 1] & 0x1F) << 8) | section[at + 2])
        at += 5 + (((section[at + 3] & 0x0F) << 8) | section[at + 4])
    return found


def h264_pes_start(packet: TsPacket) -> tuple[int | None, bool] | None:
    """(PTS, whether a decoder can start here) if an H.264 PES starts in this packet. A decoder can
    start on an IDR slice or a sequence parameter set, which x264 sends right before each IDR."""
    payload = packet.payload
    if not packet.pusi or payload[:3] != b"\x00\x00\x01" or len(payload) < 9:
        return None
    pts = None
    if payload[7] & 0x80 and len(payload) >= 14:
        b = payload[9:14]
        pts = ((b[0] >> 1) & 0x7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    body = payload[9 + payload[8] :]
    key = False
    at = body.find(b"\x00\x00\x01")
    while 0 <= at < len(body) - 3:
        if body[at + 3] & 0x1F in (5, 7):
            key = True
            break
        at = body.find(b"\x00\x00\x01", at + 3)
    return pts, key
