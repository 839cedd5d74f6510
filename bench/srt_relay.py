"""Our SRT relay against srt-live-transmit: CPU per stream and added latency, on loopback.

    python -m bench.srt_relay --streams 1,8,32

For each stream count, each relay runs one process per stream (srt-live-transmit's model). Every
stream is a 10 Mbit/s H.264 MPEG-TS file sent in real time by ffmpeg; the relay listens for it
and calls a sink. The relays' own CPU (utime + stime from /proc) is read over a fixed window after
a warm-up.

Latency uses timestamped probe messages: a sender puts a monotonic-clock timestamp in each 1316-byte
message and a receiver in the same process subtracts. One probe flow goes straight to its receiver
(one SRT hop), another through an extra relay of the kind under test (two hops), both at the same
time, under the same load, with the same SRT latency. A relay that starts each hop's latency window
afresh adds one SRT latency by design, so what is reported is

    added = relayed - median(direct) - one SRT latency

i.e. the time the relay process itself costs the stream.

At one stream count (8 by default) two minimal relays written here run the same streams in ONE
process: one thread per input with blocking reads, and one thread waiting on all inputs with
srt_epoll_uwait and non-blocking reads. They do no stats or TS checks, so next to each other they
show what the waiting model costs; next to our relay, what the relay's per-message work costs.

The relays run with their own defaults, which are alike: neither paces its sends (libsrt MAXBW=-1).
``--output-options 'maxbw=0&oheadbw=25'`` paces every relay's output at the input rate + 25 %, to
see what libsrt's pacing send thread costs.

The bench starts ffmpeg, the relays and its own helper processes (``sink``, ``probe`` and
``mini-relay`` below, run as ``python -m bench.srt_relay <helper> ...``), and stops each of them by
PID when done, on Ctrl-C, or on failure.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import Processes, bench_main, host_cpu_ticks, interrupt, missing_tools, process_cpu_seconds
from media_engine.srt import errors
from media_engine.srt.errors import SrtError
from media_engine.srt.library import library
from media_engine.srt.link import dial
from media_engine.srt.socket import LIVE_PAYLOAD, Opt, SrtSocket
from media_engine.urls import endpoint_from_url

HOST = "127.0.0.1"
LATENCY_MS = 120
STREAM_BPS = 10_000_000
RECV_BUFFER = 1500
TS_NULL_PACKET = bytes([0x47, 0x1F, 0xFF, 0x10]) + bytes(184)
PROBE_STAMP = struct.Struct("!QQ")  # monotonic ns at send, sequence number
PROBE_STAMP_OFFSET = 4  # inside the first TS packet's payload, so the relay sees valid TS
SRT_EPOLL_IN = 0x1
SRT_EPOLL_ERR = 0x8
EPOLL_BATCH = 64
SATURATED_HOST_PCT = 95.0
DEFAULT_PACING = "each relay's defaults: no send pacing (libsrt maxbw=-1) for all of them"


def srt_url(port: int, **options: str | int) -> str:
    return f"srt://{HOST}:{port}?" + "&".join(f"{key}={value}" for key, value in options.items())


def output_url(port: int, extra: str = "") -> str:
    """Where a relay sends: a caller to the sink, plus any options given on the bench's command line."""
    url = srt_url(port, mode="caller", latency=LATENCY_MS)
    return f"{url}&{extra}" if extra else url


class EpollEvent(ctypes.Structure):
    """SRT_EPOLL_EVENT (srt.h)."""

    _fields_ = [("fd", ctypes.c_int32), ("events", ctypes.c_int)]


# --------------------------------------------------------------------------------------------------
# Helpers run as separate processes, so their Python work never competes with the bench's own
# timing and the relays' CPU is read alone.
# --------------------------------------------------------------------------------------------------


class _Window:
    """The measured window: the first SIGUSR1 opens it, the second closes it. The bench closes it
    before stopping the relays, so their shutdown never counts."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.closed = threading.Event()

    def toggle(self, *_: Any) -> None:
        (self.closed if self.opened.is_set() else self.opened).set()

    @property
    def active(self) -> bool:
        return self.opened.is_set() and not self.closed.is_set()


def _stop_on_signals(stop: threading.Event, window: _Window | None = None) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if window is not None:
        signal.signal(signal.SIGUSR1, window.toggle)


def _configure(sock: SrtSocket) -> None:
    sock.set(Opt.PAYLOADSIZE, LIVE_PAYLOAD)
    sock.set(Opt.RCVLATENCY, LATENCY_MS)
    sock.set(Opt.PEERLATENCY, LATENCY_MS)


def _listener(port: int) -> SrtSocket:
    sock = SrtSocket()
    _configure(sock)
    sock.bind(HOST, port)
    sock.listen(4)
    return sock


def _dial(port: int, stop: threading.Event, patience_s: float = 20.0) -> SrtSocket:
    """Connect, retrying while the peer starts up."""
    deadline = time.monotonic() + patience_s
    while True:
        sock = SrtSocket()
        _configure(sock)
        sock.set(Opt.CONNTIMEO, 1000)
        try:
            sock.connect(HOST, port)
            return sock
        except SrtError:
            sock.close()
            if stop.is_set() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _dial_like_the_gateway(port: int, extra: str, stop: threading.Event, patience_s: float = 20.0) -> SrtSocket:
    """An output socket with exactly the options our relay's outputs get (non-blocking sends and
    libsrt's send pacing included), so the minimal relays differ from ours only in their loop."""
    settings = endpoint_from_url(output_url(port, extra), name="output", default_mode="caller").srt
    assert settings is not None
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return dial(settings, sender=True)
        except SrtError:
            if stop.is_set() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _last_error_code() -> int:
    lib = library()
    code = lib.srt_getlasterror(None)
    lib.srt_clearlasterror()
    return code


class _Epoll:
    """srt_epoll over SRT sockets, level-triggered."""

    def __init__(self) -> None:
        self.lib = library()
        self.eid = self.lib.srt_epoll_create()
        if self.eid < 0:
            raise SrtError("srt_epoll_create failed")
        self._events = (EpollEvent * EPOLL_BATCH)()

    def add(self, handle: int, events: int = SRT_EPOLL_IN | SRT_EPOLL_ERR) -> None:
        if self.lib.srt_epoll_add_usock(self.eid, handle, ctypes.byref(ctypes.c_int(events))) < 0:
            raise SrtError(f"srt_epoll_add_usock({handle}) failed")

    def remove(self, handle: int) -> None:
        self.lib.srt_epoll_remove_usock(self.eid, handle)

    def wait(self, timeout_ms: int) -> list[int]:
        ready = self.lib.srt_epoll_uwait(self.eid, self._events, EPOLL_BATCH, timeout_ms)
        if ready <= 0:
            self.lib.srt_clearlasterror()  # a timeout is reported as an error
            return []
        return [self._events[index].fd for index in range(ready)]

    def release(self) -> None:
        self.lib.srt_epoll_release(self.eid)


def _drain(lib: Any, handle: int, buffer: ctypes.Array, on_message: Callable[[int], None]) -> bool:
    """Read every message TSBPD has released, so one epoll wake-up serves a whole burst.

    Returns False when the connection broke rather than ran dry.
    """
    while True:
        length = lib.srt_recvmsg(handle, buffer, RECV_BUFFER)
        if length > 0:
            on_message(length)
            continue
        return length == 0 or _last_error_code() == errors.EASYNCRCV


def _accept_nonblocking(listener: SrtSocket) -> SrtSocket:
    sock, _peer = listener.accept()
    sock.set(Opt.RCVSYN, False)
    return sock


def sink_main(argv: Sequence[str]) -> int:
    """Listen on each port, drain every connection from one epoll thread, print bytes per port.

    SIGUSR1 opens and closes the measured window; SIGTERM stops and prints the JSON result.
    """
    parser = argparse.ArgumentParser(prog="sink")
    parser.add_argument("--ports", required=True)
    args = parser.parse_args(argv)
    ports = [int(port) for port in args.ports.split(",")]
    stop, window = threading.Event(), _Window()
    _stop_on_signals(stop, window)
    lib = library()
    epoll = _Epoll()
    listeners = {}
    for index, port in enumerate(ports):
        sock = _listener(port)
        listeners[sock.handle] = (sock, index)
        epoll.add(sock.handle, SRT_EPOLL_IN)
    connections: dict[int, tuple[SrtSocket, int]] = {}
    received = [0] * len(ports)
    marks: list[tuple[float, list[int]]] = []  # (time, bytes per port) when the window opened, closed
    buffer = ctypes.create_string_buffer(RECV_BUFFER)
    while not stop.is_set():
        if len(marks) < (window.opened.is_set() + window.closed.is_set()):
            marks.append((time.monotonic(), list(received)))
        for handle in epoll.wait(100):
            if handle in listeners:
                listener, index = listeners[handle]
                try:
                    conn = _accept_nonblocking(listener)
                except SrtError:
                    continue
                connections[conn.handle] = (conn, index)
                epoll.add(conn.handle)
                continue
            conn, index = connections[handle]

            def count(length: int, index: int = index) -> None:
                received[index] += length

            if not _drain(lib, handle, buffer, count):
                epoll.remove(handle)
                conn.close()
                del connections[handle]
    if len(marks) == 2:
        (start, before), (end, after) = marks
        result = {"bytes": [b - a for a, b in zip(before, after, strict=True)], "seconds": end - start}
    else:
        result = {"error": "the measured window was not opened and closed"}
    print(json.dumps(result), flush=True)
    for sock, _ in [*connections.values(), *listeners.values()]:
        sock.close()
    epoll.release()
    return 0


@dataclass
class _ProbeFlow:
    name: str
    send_port: int
    recv_port: int
    samples: array.array = field(default_factory=lambda: array.array("q"))
    lost: int = 0
    sockets: list[SrtSocket] = field(default_factory=list)


def _probe_message() -> ctypes.Array:
    message = ctypes.create_string_buffer(LIVE_PAYLOAD)
    message.raw = TS_NULL_PACKET * (LIVE_PAYLOAD // len(TS_NULL_PACKET))
    return message


def _probe_send(flow: _ProbeFlow, rate_bps: int, stop: threading.Event) -> None:
    try:
        sock = _dial(flow.send_port, stop)
    except SrtError as exc:
        print(f"probe {flow.name}: {exc}", file=sys.stderr)
        return
    flow.sockets.append(sock)
    message = _probe_message()
    interval = LIVE_PAYLOAD * 8 / rate_bps
    sequence = 0
    due = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.05:
            due = now  # fell far behind (machine busy): resume the pace instead of bursting
        PROBE_STAMP.pack_into(message, PROBE_STAMP_OFFSET, time.monotonic_ns(), sequence)
        try:
            sock.send(message, LIVE_PAYLOAD)
        except SrtError:
            return
        sequence += 1
        due += interval


def _probe_receive(flow: _ProbeFlow, listener: SrtSocket, window: _Window) -> None:
    try:
        sock, _peer = listener.accept()
    except SrtError:
        return
    flow.sockets.append(sock)
    buffer = ctypes.create_string_buffer(RECV_BUFFER)
    expected = 0
    while True:
        try:
            sock.recv_into(buffer)
        except SrtError:
            return
        arrived = time.monotonic_ns()
        sent, sequence = PROBE_STAMP.unpack_from(buffer, PROBE_STAMP_OFFSET)
        if window.active:
            flow.samples.append(arrived - sent)
            flow.lost += max(0, sequence - expected)
        expected = sequence + 1


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _latency_summary(direct: _ProbeFlow, relayed: _ProbeFlow) -> dict[str, Any]:
    if not direct.samples or not relayed.samples:
        return {"error": f"no samples (direct {len(direct.samples)}, relayed {len(relayed.samples)})"}
    ms = 1e-6
    direct_p50 = percentile(direct.samples, 0.5)
    added = [sample - direct_p50 - LATENCY_MS * 1_000_000 for sample in relayed.samples]
    return {
        "direct_ms": [percentile(direct.samples, q) * ms for q in (0.5, 0.99)],
        "relayed_ms": [percentile(relayed.samples, q) * ms for q in (0.5, 0.99)],
        "added_ms": [percentile(added, q) * ms for q in (0.5, 0.99)],
        "samples": [len(direct.samples), len(relayed.samples)],
        "lost": [direct.lost, relayed.lost],
    }


def probe_main(argv: Sequence[str]) -> int:
    """Two timestamped flows: straight to a receiver, and through a relay. Samples are kept inside
    the window SIGUSR1 opens and closes; SIGTERM stops and prints the latency summary as JSON."""
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("--direct-port", type=int, required=True)
    parser.add_argument("--relay-in-port", type=int, required=True)
    parser.add_argument("--relay-out-port", type=int, required=True)
    parser.add_argument("--rate-bps", type=int, default=STREAM_BPS)
    args = parser.parse_args(argv)
    stop, window = threading.Event(), _Window()
    _stop_on_signals(stop, window)
    direct = _ProbeFlow("direct", args.direct_port, args.direct_port)
    relayed = _ProbeFlow("relayed", args.relay_in_port, args.relay_out_port)
    threads = []
    listeners = []
    for flow in (direct, relayed):
        listener = _listener(flow.recv_port)
        listeners.append(listener)
        threads.append(threading.Thread(target=_probe_receive, args=(flow, listener, window), daemon=True))
        threads.append(threading.Thread(target=_probe_send, args=(flow, args.rate_bps, stop), daemon=True))
    for thread in threads:
        thread.start()
    while not stop.wait(0.2):
        pass
    window.closed.set()
    for sock in [*listeners, *direct.sockets, *relayed.sockets]:
        sock.close()
    for thread in threads:
        thread.join(timeout=5)
    print(json.dumps(_latency_summary(direct, relayed)), flush=True)
    return 0


def _pairs(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (pair.split(":") for pair in text.split(","))]


def _thread_per_input(listener: SrtSocket, output: SrtSocket, inputs: list[SrtSocket], counts: list[int]) -> None:
    lib = library()
    try:
        conn, _peer = listener.accept()
    except SrtError:
        return
    inputs.append(conn)
    buffer = ctypes.create_string_buffer(RECV_BUFFER)
    handle, out = conn.handle, output.handle
    messages = 0
    while True:
        length = lib.srt_recvmsg(handle, buffer, RECV_BUFFER)
        if length < 0:
            counts.append(messages)
            return
        lib.srt_sendmsg(out, buffer, length, -1, 0)  # a full buffer drops, as in the gateway
        messages += 1


def _run_threads(pairs: list[tuple[SrtSocket, SrtSocket]], stop: threading.Event) -> dict[str, int]:
    inputs: list[SrtSocket] = []
    counts: list[int] = []
    threads = [
        threading.Thread(target=_thread_per_input, args=(listener, output, inputs, counts), daemon=True)
        for listener, output in pairs
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(0.2):
        pass
    for sock in [*inputs, *(listener for listener, _ in pairs)]:
        sock.close()
    for thread in threads:
        thread.join(timeout=5)
    return {"messages": sum(counts)}


def _run_epoll(pairs: list[tuple[SrtSocket, SrtSocket]], stop: threading.Event) -> dict[str, int]:
    lib = library()
    counts = {"wakeups": 0, "ready": 0, "messages": 0}
    epoll = _Epoll()
    listeners = {listener.handle: (listener, output) for listener, output in pairs}
    for handle in listeners:
        epoll.add(handle, SRT_EPOLL_IN)
    routes: dict[int, tuple[SrtSocket, int]] = {}
    buffer = ctypes.create_string_buffer(RECV_BUFFER)
    while not stop.is_set():
        ready = epoll.wait(100)
        counts["wakeups"] += bool(ready)
        counts["ready"] += len(ready)
        for handle in ready:
            if handle in listeners:
                listener, output = listeners[handle]
                try:
                    conn = _accept_nonblocking(listener)
                except SrtError:
                    continue
                routes[conn.handle] = (conn, output.handle)
                epoll.add(conn.handle)
                continue
            conn, out = routes[handle]

            def forward(length: int, out: int = out) -> None:
                lib.srt_sendmsg(out, buffer, length, -1, 0)
                counts["messages"] += 1

            if not _drain(lib, handle, buffer, forward):
                epoll.remove(handle)
                conn.close()
                del routes[handle]
    for sock, _ in routes.values():
        sock.close()
    for listener, _ in listeners.values():
        listener.close()
    epoll.release()
    return counts


def mini_relay_main(argv: Sequence[str]) -> int:
    """A minimal relay of many streams in one process: ``--mode threads`` or ``--mode epoll``.
    Prints its counters as JSON when stopped."""
    parser = argparse.ArgumentParser(prog="mini-relay")
    parser.add_argument("--mode", choices=("threads", "epoll"), required=True)
    parser.add_argument("--pairs", type=_pairs, required=True, help="IN:OUT,...: listen on IN, call OUT")
    parser.add_argument("--output-options", default="", help="extra srt:// URL options for the outputs")
    args = parser.parse_args(argv)
    stop = threading.Event()
    _stop_on_signals(stop)
    pairs = []
    try:
        for in_port, out_port in args.pairs:
            output = _dial_like_the_gateway(out_port, args.output_options, stop)
            pairs.append((_listener(in_port), output))
        counts = (_run_epoll if args.mode == "epoll" else _run_threads)(pairs, stop)
        print(json.dumps(counts), flush=True)
    finally:
        for listener, output in pairs:
            listener.close()
            output.close()
    return 0


HELPERS: dict[str, Callable[[Sequence[str]], int]] = {
    "sink": sink_main,
    "probe": probe_main,
    "mini-relay": mini_relay_main,
}


# --------------------------------------------------------------------------------------------------
# The bench: processes, measurement, phases, report.
# --------------------------------------------------------------------------------------------------


def helper_command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.srt_relay", name, *args]


def bound_udp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as lines:
                next(lines)
                ports.update(int(line.split()[1].rpartition(":")[2], 16) for line in lines)
        except FileNotFoundError:
            continue
    return ports


def wait_bound(ports: Iterable[int], processes: Iterable[subprocess.Popen], timeout_s: float = 15.0) -> None:
    """Wait until something listens on each UDP port, failing early if a process died."""
    wanted = set(ports)
    deadline = time.monotonic() + timeout_s
    while not wanted <= bound_udp_ports():
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{shlex.join(map(str, process.args))} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"UDP ports never bound: {sorted(wanted - bound_udp_ports())}")
        time.sleep(0.1)


def make_test_stream(cache_dir: Path, seconds: int = 20) -> Path:
    """A 720p H.264 TS at a constant 10 Mbit/s (filler keeps it constant), made once and cached."""
    target = cache_dir / f"h264-1280x720-10M-cbr-{seconds}s.ts"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.ts")
    print(f"encoding the test stream into {target} (once) ...", flush=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "50", "-pix_fmt", "yuv420p",
         "-b:v", "10M", "-minrate", "10M", "-maxrate", "10M", "-bufsize", "2M", "-x264-params", "nal-hrd=cbr",
         "-f", "mpegts", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(target)
    return target


def feeder_command(ts_file: Path, port: int) -> list[str]:
    # ffmpeg's SRT latency is in microseconds.
    url = srt_url(port, mode="caller", latency=LATENCY_MS * 1000, pkt_size=LIVE_PAYLOAD)
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(ts_file), "-c", "copy", "-f", "mpegts", url]  # fmt: skip


@dataclass(frozen=True)
class RelayKind:
    """How to start one kind of relay for a set of (input port, output port) pairs."""

    key: str
    label: str
    commands: Callable[[list[tuple[int, int]], str], list[list[str]]]  # (pairs, extra output options)


def ours(pairs: list[tuple[int, int]], extra: str) -> list[list[str]]:
    return [
        [sys.executable, "-m", "media_engine", "relay",
         "--input", srt_url(in_port, mode="listener", latency=LATENCY_MS),
         "--output", output_url(out_port, extra),
         "--stats-interval", "1", "--log-level", "WARNING"]
        for in_port, out_port in pairs
    ]  # fmt: skip


def reference(srctime: str) -> Callable[[list[tuple[int, int]], str], list[list[str]]]:
    def commands(pairs: list[tuple[int, int]], extra: str) -> list[list[str]]:
        return [
            ["srt-live-transmit", "-q", "-loglevel:error", f"-srctime:{srctime}",
             srt_url(in_port, mode="listener", latency=LATENCY_MS), output_url(out_port, extra)]
            for in_port, out_port in pairs
        ]  # fmt: skip

    return commands


def mini(mode: str) -> Callable[[list[tuple[int, int]], str], list[list[str]]]:
    def commands(pairs: list[tuple[int, int]], extra: str) -> list[list[str]]:
        pair_list = ",".join(f"{a}:{b}" for a, b in pairs)
        return [helper_command("mini-relay", "--mode", mode, "--pairs", pair_list, "--output-options", extra)]

    return commands


@dataclass
class PhaseResult:
    kind: RelayKind
    streams: int
    relay_processes: int
    relay_cpu_pct: float  # of one core, all measured relay processes together
    host_busy_pct: float  # of the whole machine
    delivered_mbps: list[float]
    latency: dict[str, Any]
    warnings: list[str]
    relay_counters: dict[str, Any] = field(default_factory=dict)  # what a bench-written relay printed

    @property
    def cpu_per_stream(self) -> float:
        return self.relay_cpu_pct / self.streams

    def overload(self) -> str:
        """Why this phase's numbers describe a starved machine rather than the relay, if they do."""
        signs = []
        if self.host_busy_pct >= SATURATED_HOST_PCT:
            signs.append(f"host {self.host_busy_pct:.0f} % busy")
        if not self.delivered_mbps or min(self.delivered_mbps) < STREAM_BPS / 1e6 * 0.95:
            signs.append("sinks short of the stream rate")
        direct = self.latency.get("direct_ms")
        if not direct or direct[0] > LATENCY_MS + 10:
            signs.append("probe starved")
        return ", ".join(signs)


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    window_s: float


@dataclass(frozen=True)
class PortBlock:
    """The loopback UDP ports one phase uses; phases never share ports (libsrt lingers on closed ones)."""

    base: int
    streams: int

    def inputs(self) -> list[int]:
        return [self.base + index for index in range(self.streams)]

    def sinks(self) -> list[int]:
        return [self.base + self.streams + index for index in range(self.streams)]

    def probe(self) -> tuple[int, int, int]:
        """Direct receiver, probe relay input, probe relay output."""
        first = self.base + 2 * self.streams
        return first, first + 1, first + 2

    @staticmethod
    def size(streams: int) -> int:
        return 2 * streams + 3


def last_json_line(path: Path) -> dict[str, Any]:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _check_alive(processes: Iterable[subprocess.Popen], what: str) -> list[str]:
    return [
        f"{what} {shlex.join(map(str, process.args))} exited with {process.returncode}"
        for process in processes
        if process.poll() is not None
    ]


@dataclass(frozen=True)
class Setup:
    ts_file: Path
    timing: Timing
    output_options: str


@dataclass
class _Running:
    """The processes of one phase, in the order they must start."""

    sink: subprocess.Popen
    probe: subprocess.Popen
    relays: list[subprocess.Popen]
    probe_relay: subprocess.Popen
    feeders: list[subprocess.Popen]

    def check(self) -> list[str]:
        return _check_alive(self.feeders, "feeder") + _check_alive([*self.relays, self.probe_relay], "relay")


def _start_phase(kind: RelayKind, ports: PortBlock, setup: Setup, procs: Processes, tag: str) -> _Running:
    """Receivers first, then the relays, then the senders, so no caller dials an absent listener."""
    direct_port, probe_in, probe_out = ports.probe()
    sink = procs.start(
        f"{tag}-sink", helper_command("sink", "--ports", ",".join(map(str, ports.sinks()))), pipe_stdout=True
    )
    probe_args = ["--direct-port", str(direct_port), "--relay-in-port", str(probe_in),
                  "--relay-out-port", str(probe_out)]  # fmt: skip
    probe = procs.start(f"{tag}-probe", helper_command("probe", *probe_args), pipe_stdout=True)
    wait_bound([*ports.sinks(), direct_port, probe_out], [sink, probe])
    pairs = list(zip(ports.inputs(), ports.sinks(), strict=True))
    commands = kind.commands(pairs, setup.output_options)
    relays = [procs.start(f"{tag}-relay{index}", command) for index, command in enumerate(commands)]
    probe_relay = procs.start(f"{tag}-probe-relay", kind.commands([(probe_in, probe_out)], setup.output_options)[0])
    wait_bound([*ports.inputs(), probe_in], [*relays, probe_relay])
    feeders = []
    for index, port in enumerate(ports.inputs()):
        feeders.append(procs.start(f"{tag}-feed{index}", feeder_command(setup.ts_file, port)))
        time.sleep(0.05)  # so the streams' keyframes do not all land at the same instant
    return _Running(sink, probe, relays, probe_relay, feeders)


def _measure(running: _Running, window_s: float) -> tuple[float, float]:
    """(CPU % of one core used by the measured relays, % of the whole machine busy) over the window.
    The sink and the probe are told when the window opens and closes, so all numbers cover it."""
    cpu_before = [process_cpu_seconds(relay.pid) for relay in running.relays]
    host_before = host_cpu_ticks()
    started = time.monotonic()
    for helper in (running.sink, running.probe):
        helper.send_signal(signal.SIGUSR1)
    time.sleep(window_s)
    cpu_after = [process_cpu_seconds(relay.pid) for relay in running.relays]
    host_after = host_cpu_ticks()
    elapsed = time.monotonic() - started
    for helper in (running.sink, running.probe):
        helper.send_signal(signal.SIGUSR1)
    busy, total = (after - before for after, before in zip(host_after, host_before, strict=True))
    return 100 * (sum(cpu_after) - sum(cpu_before)) / elapsed, 100 * busy / total if total else 0.0


def run_phase(kind: RelayKind, ports: PortBlock, setup: Setup, procs: Processes) -> PhaseResult:
    tag = f"{kind.key}-{ports.streams}"
    running = _start_phase(kind, ports, setup, procs, tag)
    time.sleep(setup.timing.warmup_s)
    warnings = running.check()
    relay_cpu, host_busy = _measure(running, setup.timing.window_s)
    warnings += running.check()
    time.sleep(0.3)  # the sink notes the window's end within 0.1 s
    for process in [*running.feeders, *running.relays, running.probe_relay]:  # upstream first: no broken peers
        procs.stop(process)
    latency = procs.result(running.probe)
    delivered = procs.result(running.sink)
    seconds = delivered.get("seconds") or setup.timing.window_s
    return PhaseResult(
        kind=kind,
        streams=ports.streams,
        relay_processes=len(running.relays),
        relay_cpu_pct=relay_cpu,
        host_busy_pct=host_busy,
        delivered_mbps=[count * 8 / seconds / 1e6 for count in delivered.get("bytes", [])],
        latency=latency,
        warnings=warnings + ([f"sink: {delivered['error']}"] if "error" in delivered else []),
        relay_counters=last_json_line(procs.log_dir / f"{tag}-relay0.log") if kind.key.startswith("mini") else {},
    )


# report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _added(result: PhaseResult | None) -> str:
    if result is None:
        return "-"
    added = result.latency.get("added_ms")
    return f"{added[0]:.1f} / {added[1]:.1f}" if added else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "| " + " | ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)) + " |"
    lines = [line, "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    for row in rows:
        # Labels read left to right, numbers line up on the right.
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(results: list[PhaseResult], counts: list[int]) -> str:
    def find(key: str, streams: int) -> PhaseResult | None:
        return next((r for r in results if r.kind.key == key and r.streams == streams), None)

    rows = []
    for streams in counts:
        mine, theirs = find("ours", streams), find("reference", streams)
        ratio = mine.cpu_per_stream / theirs.cpu_per_stream if mine and theirs and theirs.cpu_per_stream else None
        rows.append([
            str(streams),
            _pct(mine.cpu_per_stream if mine else None),
            _pct(theirs.cpu_per_stream if theirs else None),
            "-" if ratio is None else f"{ratio:.2f}",
            _added(mine),
            _added(theirs),
            "; ".join(f"{name}: {r.overload()}" for name, r in (("ours", mine), ("ref", theirs)) if r and r.overload()),
        ])  # fmt: skip
    header = ["streams", "ours CPU %/stream", "reference CPU %/stream", "ratio", "ours added p50/p99 ms",
              "reference added p50/p99 ms", "overload (numbers unreliable)"]  # fmt: skip
    return _table(header, rows)


def detail_table(results: list[PhaseResult]) -> str:
    rows = []
    for r in results:
        mbps = r.delivered_mbps
        latency = r.latency
        rows.append([
            r.kind.label,
            str(r.streams),
            str(r.relay_processes),
            _pct(r.relay_cpu_pct),
            _pct(r.cpu_per_stream),
            f"{min(mbps):.2f} / {sum(mbps) / len(mbps):.2f}" if mbps else "-",
            "/".join(f"{v:.1f}" for v in latency.get("direct_ms", [])) or "-",
            "/".join(f"{v:.1f}" for v in latency.get("relayed_ms", [])) or "-",
            _added(r),
            "/".join(str(v) for v in latency.get("lost", [])) or "-",
            _pct(r.host_busy_pct),
        ])  # fmt: skip
    header = ["relay", "streams", "procs", "CPU % total", "CPU %/stream", "sink Mbit/s min/mean",
              "direct p50/p99 ms", "relayed p50/p99 ms", "added p50/p99 ms", "probe lost d/r",
              "host busy %"]  # fmt: skip
    return _table(header, rows)


def epoll_table(results: list[PhaseResult], streams: int) -> str:
    keys = ("ours", "mini-threads", "mini-epoll")
    rows = []
    for key in keys:
        r = next((r for r in results if r.kind.key == key and r.streams == streams), None)
        if r is not None:
            counters = r.relay_counters
            per_wakeup = counters["messages"] / counters["wakeups"] if counters.get("wakeups") else None
            rows.append([
                r.kind.label, str(r.relay_processes), _pct(r.relay_cpu_pct), _pct(r.cpu_per_stream), _added(r),
                "-" if per_wakeup is None else f"{per_wakeup:.2f}",
            ])  # fmt: skip
    header = ["relay", "processes", "CPU % total", "CPU %/stream", "added p50/p99 ms", "messages per epoll wake-up"]
    return _table(header, rows)


def print_report(results: list[PhaseResult], counts: list[int], args: argparse.Namespace, argv: Sequence[str]) -> None:
    print()
    print(f"SRT relay bench: streams {','.join(map(str, counts))}, ~10 Mbit/s H.264 MPEG-TS each, SRT latency "
          f"{LATENCY_MS} ms, warm-up {args.warmup:g} s, window {args.window:g} s, {os.cpu_count()} CPUs")  # fmt: skip
    print("command: " + shlex.join(["python", "-m", "bench.srt_relay", *argv]))
    example = [(args.base_port, args.base_port + 1)]
    print("ours:      " + shlex.join(["python", *ours(example, args.output_options)[0][1:]]))
    print("reference: " + shlex.join(reference(args.reference_srctime)(example, args.output_options)[0]))
    print("output options: " + (args.output_options or DEFAULT_PACING))
    print("CPU: % of one core, utime+stime of the relay processes only; added = relayed - direct p50 - SRT latency")
    print()
    print(summary_table(results, counts))
    print()
    print(detail_table(results))
    if args.epoll_streams:
        print()
        print(f"one-process alternatives at {args.epoll_streams} streams (minimal loops: no stats, no TS checks):")
        print(epoll_table(results, args.epoll_streams))
    warnings = [warning for r in results for warning in r.warnings]
    if warnings:
        print()
        print("warnings:")
        for warning in warnings:
            print(f"  - {warning}")


# command line


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("expected stream counts such as 1,8,32")
    return counts


def _relays(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys or set(keys) - {"ours", "reference"}:
        raise argparse.ArgumentTypeError("expected ours, reference or ours,reference")
    return keys


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.srt_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=_counts, default=[1, 8, 32], help="stream counts (default 1,8,32)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--base-port", type=int, default=21000, help="first loopback UDP port used")
    parser.add_argument("--epoll-streams", type=int, default=8, help="streams for the one-process loops (0: skip)")
    parser.add_argument("--relays", type=_relays, default=["ours", "reference"], help="ours,reference or one of them")
    parser.add_argument(
        "--reference-srctime",
        choices=("no", "yes"),
        default="no",
        help="srt-live-transmit -srctime: 'no' (default) stamps each message when the relay sends it, as our "
        "relay does; 'yes' hands the source's packet time on",
    )
    parser.add_argument(
        "--output-options",
        default="",
        help="srt:// URL options added to every relay's output, e.g. 'maxbw=0&oheadbw=25' (paced at "
        "input rate + 25%%); by default no relay paces its sends",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vajracast-bench",
        help="where the test stream is encoded once and kept",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep every process's log")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[RelayKind, int]]:
    kinds = {
        "ours": RelayKind("ours", "ours (process/stream)", ours),
        "reference": RelayKind("reference", "srt-live-transmit", reference(args.reference_srctime)),
    }
    phases = [(kinds[key], streams) for streams in args.streams for key in args.relays]
    if args.epoll_streams:
        if args.epoll_streams not in args.streams and "ours" in args.relays:
            phases.append((kinds["ours"], args.epoll_streams))
        phases.append((RelayKind("mini-threads", "1 process, thread/input", mini("threads")), args.epoll_streams))
        phases.append((RelayKind("mini-epoll", "1 process, 1 epoll thread", mini("epoll")), args.epoll_streams))
    return phases


def run(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if missing_tools("ffmpeg", "srt-live-transmit"):
        return 2
    library()  # fail now, not in a helper, if libsrt is missing
    ts_file = make_test_stream(args.cache_dir)
    log_dir = Path(tempfile.mkdtemp(prefix="srt-relay-bench-"))
    procs = Processes(log_dir)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    setup = Setup(ts_file, Timing(args.warmup, args.window), args.output_options)
    phases = plan(args)
    stride = max(PortBlock.size(streams) for _, streams in phases)
    results: list[PhaseResult] = []
    failures: list[str] = []
    try:
        for index, (kind, streams) in enumerate(phases):
            print(f"[{index + 1}/{len(phases)}] {kind.label}, {streams} stream(s) ...", flush=True)
            ports = PortBlock(args.base_port + index * stride, streams)
            try:
                results.append(run_phase(kind, ports, setup, procs))
            except (RuntimeError, OSError) as exc:
                failures.append(f"{kind.label}, {streams} stream(s): {exc}")
            finally:
                procs.stop_all()
    except BaseException:
        print(f"process logs: {log_dir}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
    if failures or args.keep_logs or any(result.warnings for result in results):
        print(f"process logs: {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    print_report(results, args.streams, args, argv)
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(argv, run, HELPERS)


if __name__ == "__main__":
    sys.exit(main())
