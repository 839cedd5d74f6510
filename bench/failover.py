"""Input failover, measured end to end: the gateway's relay between live encoders and real receivers.

    python bench/failover.py [--kills 10] [--flap-seconds 30] [--quick]

The relay runs as a deployment runs it, ``python -m media_engine relay`` in a process of its own,
with two SRT listener inputs on one port told apart by stream ID: ``main`` (priority 1) and
``backup``. Each input is fed by a live ffmpeg encoder (320x240, 25 fps, H.264 with a 25-frame GOP,
AAC tone, ~0.9 Mbit/s); the main one sends testsrc2 with transport_stream_id 1, the backup smptebars
with transport_stream_id 2, so every PAT in the output says which encoder is on air.

1. Kill gap. srt-live-transmit receives the relay's output and the bench stamps every chunk it
   writes. Each round waits until the output carries the main encoder, SIGKILLs it, and takes the
   largest silence between chunks from the kill to 2 s after; then checks the output's continuity
   counters across the switch, that the backup's PAT and PMT come before any of its audio or video,
   and that its first PCR is flagged as a discontinuity. The relay's own stats tell when it switched.
   Goal: gap <= health timeout + 50 ms.
2. Decoding after the switch. ffmpeg decodes the relay's output live; the main encoder is killed
   once. ffmpeg must keep running and decoding, and a clean picture (a key frame of the backup) must
   come out within one GOP of the switch, plus the decoder's own SRT latency and one frame that its
   TS demuxer holds. The relay switches at once on a sudden loss, so until that key frame the decoder
   gets the backup's P-frames on the main's pictures. A second output of the relay goes to a timed
   receiver, so what the relay sent can be told from what the decoder made of it.
3. Flapping. The main encoder's UDP link is cut for 0.5 s every second, with failback on and a
   hold-off of 5 s. Goal: at most one switch per hold-off window. When the flapping stops the relay
   must go back to the main once, after the hold-off.

The kill rounds also report the whole machine's CPU use: on a saturated host the relay's health
monitor runs late and the gap grows with it.

Every process the bench starts is stopped by its PID when done, on Ctrl-C, or on failure.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python bench/failover.py): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import (
    HOST,
    NULL_PID,
    FlappingLink,
    TimedLines,
    TimedStream,
    TsPacket,
    continuity_errors,
    free_udp_ports,
    h264_pes_start,
    latest_tsid,
    parse_ts,
    pat,
    pmt_program,
    pmt_video_pids,
    udp_bound,
    wait_until,
)
from bench.processes import Processes, bench_main, host_busy_pct, host_cpu_ticks, interrupt, missing_tools

LATENCY_MS = 120  # every SRT hop
FPS = 25
GOP = 25  # frames: one key frame a second
MAIN_TSID, BACKUP_TSID = 1, 2
MAIN_ID, BACKUP_ID = "input1", "input2"  # the ids the relay's command line gives its inputs
BARS_LUMA = 130  # mean luma of a patch at the left edge: ~180 in smptebars, 70-90 in testsrc2
OBSERVE_S = 2.0  # after a kill, how long the gap is looked for
DECODE_WATCH_S = 4.0
FLAP_PERIOD_S, FLAP_DOWN_S = 1.0, 0.5
FLAP_HOLDOFF_S = 5.0
FAILBACK_HOLDOFF_S = 1.0  # kill rounds: how soon the relay returns to the main between rounds
SWITCH_LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ \S+ \S+: switched from "([^"]+)" to "([^"]+)": (.*)$'
)
FRAME_LINE = re.compile(r"Parsed_showinfo.*\bn:\s*(\d+)\s.*?\biskey:(\d).*?\bmean:\[(\d+)")
SATURATED_HOST_PCT = 95.0
WALL_OFFSET = time.time() - time.monotonic()  # turns the relay's time.time() stamps into monotonic time


# --------------------------------------------------------------------------------------------------
# peers and the relay
# --------------------------------------------------------------------------------------------------


def encoder_command(port: int, streamid: str, *, tsid: int, pattern: str, tone_hz: int) -> list[str]:
    """A live encoder: synthetic picture and tone, encoded in real time, sent as MPEG-TS over SRT.
    zerolatency and flush_packets keep ffmpeg from holding frames back; pes_payload_size 0 puts
    every audio frame in its own PES."""
    url = f"srt://{HOST}:{port}?streamid={streamid}&latency={LATENCY_MS * 1000}&pkt_size=1316"
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-re", "-f", "lavfi", "-i", f"{pattern}=size=320x240:rate={FPS}",
            "-re", "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(GOP),
            "-pix_fmt", "yuv420p", "-b:v", "800k", "-maxrate", "800k", "-bufsize", "800k",
            "-c:a", "aac", "-b:a", "64k",
            "-f", "mpegts", "-mpegts_transport_stream_id", str(tsid), "-mpegts_service_id", str(tsid),
            "-pes_payload_size", "0", "-flush_packets", "1", url]  # fmt: skip


def start_main(procs: Processes, name: str, port: int) -> Any:
    return procs.start(name, encoder_command(port, "main", tsid=MAIN_TSID, pattern="testsrc2", tone_hz=1000))


def start_backup(procs: Processes, name: str, port: int) -> Any:
    return procs.start(name, encoder_command(port, "backup", tsid=BACKUP_TSID, pattern="smptebars", tone_hz=440))


def receiver_command(port: int) -> list[str]:
    """srt-live-transmit listening for the relay's output, writing the stream to its standard output.
    It writes through stdio, which gathers 4 KiB blocks on a pipe and would blur arrival times by
    tens of ms: stdbuf turns that off (and execs, so the PID is the receiver's own)."""
    command = ["srt-live-transmit", "-q", f"srt://:{port}?mode=listener&latency={LATENCY_MS}", "file://con"]
    return ["stdbuf", "-o0", *command] if shutil.which("stdbuf") else command


def decoder_command(port: int) -> list[str]:
    """ffmpeg decoding the relay's output live, printing one line per picture: whether it is a key
    frame and the mean luma of a patch at the left edge (tells smptebars from testsrc2). One decoder
    thread: frame threading would hold pictures back by a frame per thread."""
    url = f"srt://{HOST}:{port}?mode=listener&latency={LATENCY_MS * 1000}"
    return ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-threads", "1", "-i", url,
            "-map", "0:v:0", "-vf", "crop=32:80:4:20,showinfo", "-f", "null", "-"]  # fmt: skip


def relay_command(
    in_port: int, out_ports: list[int], *, timeout_ms: int, holdoff_s: float | None, stats_interval: float
) -> list[str]:
    """Both inputs listen on one port, told apart by stream ID; each output calls a receiver."""
    command = [sys.executable, "-m", "media_engine", "relay",
               "--input", f"srt://:{in_port}?streamid=main&latency={LATENCY_MS}",
               "--input", f"srt://:{in_port}?streamid=backup&latency={LATENCY_MS}"]  # fmt: skip
    for port in out_ports:
        command += ["--output", f"srt://{HOST}:{port}?latency={LATENCY_MS}"]
    command += ["--timeout-ms", str(timeout_ms), "--stats-interval", f"{stats_interval:g}", "--log-level", "WARNING"]
    if holdoff_s is not None:
        command += ["--failback", "--holdoff", f"{holdoff_s:g}"]
    return command


def display(command: list[str]) -> str:
    return shlex.join(["python", *command[1:]] if command[0] == sys.executable else command)


@dataclass(frozen=True)
class SwitchLine:
    at: float  # time.time()
    source: str
    target: str
    reason: str


class RelayLog:
    """What the relay wrote: JSON stats lines on stdout, log lines on stderr, both in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[str]:
        return self.path.read_text(errors="replace").splitlines() if self.path.exists() else []

    def stats(self) -> list[dict[str, Any]]:
        found = []
        for line in self._lines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # the line being written
        return found

    def switches(self) -> list[SwitchLine]:
        found = []
        for line in self._lines():
            match = SWITCH_LINE.match(line)
            if match:
                stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append(SwitchLine(stamp, match[2], match[3], match[4]))
        return found

    def active(self) -> str | None:
        stats = self.stats()
        return stats[-1]["switcher"]["active"] if stats else None

    def switch_after(self, wall: float, source: str) -> dict[str, Any] | None:
        """The relay's own record of the first switch away from ``source`` at or after ``wall``."""
        for line in self.stats():
            last = line["switcher"].get("last_switch")
            if last and last["from"] == source and last["at"] >= wall:
                return last
        return None


def start_relay(procs: Processes, name: str, command: list[str], in_port: int) -> tuple[Any, RelayLog]:
    relay = procs.start(name, command)
    wait_until(lambda: udp_bound(in_port), 15, f"{name} to listen on {in_port}", [relay])
    return relay, RelayLog(procs.log_path(name))


def start_receiver(procs: Processes, name: str, port: int) -> TimedStream:
    receiver = procs.start(name, receiver_command(port), pipe_stdout=True)
    wait_until(lambda: udp_bound(port), 15, f"{name} to listen on {port}", [receiver])
    return TimedStream(receiver)


# --------------------------------------------------------------------------------------------------
# what the receiver got
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splice:
    tsid: int | None  # of the first PAT after the splice
    pat_at: int | None  # packets after the splice
    pmt_at: int | None
    es_at: int | None  # the first audio or video packet
    pcr_flagged: bool | None  # the first PCR after the splice has discontinuity_indicator set

    @property
    def psi_first(self) -> bool:
        return (
            self.pat_at is not None
            and self.pmt_at is not None
            and (self.es_at is None or max(self.pat_at, self.pmt_at) < self.es_at)
        )

    def describe(self) -> str:
        if self.pat_at is None:
            return "no PAT"
        where = f"PAT@{self.pat_at} PMT@{'-' if self.pmt_at is None else self.pmt_at} ES@{self.es_at}"
        return ("yes " if self.psi_first else "NO ") + where


class Capture:
    """Everything the receiver got, parsed once."""

    def __init__(self, stream: TimedStream) -> None:
        self.stream = stream
        self.packets = parse_ts(bytes(stream.buffer))
        self.offsets = [packet.offset for packet in self.packets]
        self.cc_errors = [packet.offset for packet in continuity_errors(self.packets)]
        self.pmt_pids: set[int] = set()
        self.video_pids: set[int] = set()
        self.owners: list[tuple[int, int]] = []  # (offset of the first PAT of a new owner, tsid)
        for packet in self.packets:
            self.video_pids |= pmt_video_pids(packet, self.pmt_pids)
            table = pat(packet)
            if table is None:
                continue
            self.pmt_pids.update(table[1].values())
            if not self.owners or self.owners[-1][1] != table[0]:
                self.owners.append((packet.offset, table[0]))

    def cc_errors_between(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.cc_errors, end) - bisect.bisect_left(self.cc_errors, start)

    def frames_before_key(self, offset: int) -> tuple[int, bool] | None:
        """From ``offset`` on: how many video frames come before the first a decoder can start on,
        and whether their PTS all step by one frame (none missing). None if no key frame follows."""
        start = bisect.bisect_left(self.offsets, offset)
        stamps: list[int | None] = []
        for packet in self.packets[start:]:
            if packet.pid not in self.video_pids:
                continue
            found = h264_pes_start(packet)
            if found is None:
                continue
            pts, key = found
            stamps.append(pts)
            if key:
                steps = [None if a is None or b is None else (b - a) % (1 << 33) for a, b in itertools.pairwise(stamps)]
                return len(stamps) - 1, all(step == 90_000 // FPS for step in steps)
        return None

    def splice(self, offset: int) -> Splice:
        start = bisect.bisect_left(self.offsets, offset)
        tsid = pat_at = pmt_at = es_at = None
        pcr_flagged: bool | None = None
        programs: set[int] = set()
        packets: list[TsPacket] = self.packets[start : start + 4000]
        for number, packet in enumerate(packets):
            table = pat(packet) if pat_at is None else None
            if table is not None:
                tsid, pat_at, programs = table[0], number, set(table[1].values())
            elif pat_at is not None and pmt_at is None and pmt_program(packet, programs) is not None:
                pmt_at = number
            elif es_at is None and packet.pid > 0x1F and packet.pid != NULL_PID and packet.pid not in self.pmt_pids:
                es_at = number
            if pcr_flagged is None and packet.has_pcr:
                pcr_flagged = packet.discontinuity
            if None not in (pat_at, pmt_at, es_at, pcr_flagged):
                break
        return Splice(tsid, pat_at, pmt_at, es_at, pcr_flagged)


# --------------------------------------------------------------------------------------------------
# 1. kill gap
# --------------------------------------------------------------------------------------------------


@dataclass
class KillRound:
    number: int
    on_air_s: float  # from starting the main encoder until the output carried it
    killed_at: float  # time.monotonic()
    killed_wall: float  # time.time()
    host_busy_pct: float  # the whole machine, from the kill to the end of the round
    gap_ms: float | None = None
    switch_ms: float | None = None  # kill -> switch, from the relay's stats
    reason: str = ""
    cc_errors: int = 0
    splice: Splice | None = None


@dataclass
class Return:
    """The relay going back to the main encoder between rounds (a planned switch)."""

    arrived: float  # when the main's first PAT reached the receiver
    gap_ms: float | None
    gap_end_s: float  # when that gap ended, from the switch (negative: before it)
    cc_errors: int
    on_key_frame: bool  # the main's first video frame after the switch is one a decoder can start on

    def describe_gap(self) -> str:
        if self.gap_ms is None or self.gap_ms <= 2000 / FPS:
            return ms(self.gap_ms)
        return f"{self.gap_ms:.0f} (ending {self.gap_end_s:+.2f} s from the switch)"


@dataclass
class KillResult:
    rounds: list[KillRound]
    returns: list[Return]
    cc_total: int
    command: list[str]
    timeout_ms: int


def run_kills(args: argparse.Namespace, procs: Processes, rng: random.Random) -> KillResult:
    in_port, out_port = free_udp_ports(2)
    receiver = start_receiver(procs, "kill-receiver", out_port)
    # One relay for all rounds, with failback after 1 s: each round starts from a relay that has
    # already been through switches, as a long-running route has, and the kill itself takes the
    # same path whatever the failback settings (a sudden loss switches at once). The alternative, a
    # fresh relay per round, would measure only the first switch of a just-started relay.
    command = relay_command(
        in_port, [out_port], timeout_ms=args.timeout_ms, holdoff_s=FAILBACK_HOLDOFF_S, stats_interval=1.0
    )
    relay, log = start_relay(procs, "kill-relay", command, in_port)
    backup = start_backup(procs, "kill-backup", in_port)
    rounds: list[KillRound] = []
    for number in range(1, args.kills + 1):
        print(f"  kill {number}/{args.kills} ...", flush=True)
        main = start_main(procs, f"kill-main{number}", in_port)
        on_air = wait_until(
            lambda: latest_tsid(receiver) == MAIN_TSID,
            30,
            "the output to carry the main encoder",
            [main, backup, relay],
        )
        time.sleep(rng.uniform(1.0, 2.0))  # so the kills land anywhere in the GOP
        ticks = host_cpu_ticks()
        killed_wall, killed_at = time.time(), time.monotonic()
        procs.kill(main)
        time.sleep(OBSERVE_S + 0.5)  # the receiver's SRT latency on top of the 2 s observed
        rounds.append(KillRound(number, on_air, killed_at, killed_wall, host_busy_pct(ticks, host_cpu_ticks())))
        last = log.switch_after(killed_wall - 0.05, MAIN_ID)
        if last is not None:
            rounds[-1].switch_ms = (last["at"] - killed_wall) * 1000
            rounds[-1].reason = last["reason"]
    for process in (backup, relay):
        procs.stop(process)
    procs.stop(receiver.process)
    receiver.join()
    (procs.log_dir / "kill-receiver.ts").write_bytes(receiver.buffer)
    capture = Capture(receiver)
    for kill in rounds:
        gap = receiver.largest_gap(kill.killed_at, kill.killed_at + OBSERVE_S)
        if gap is not None:
            kill.gap_ms = gap[0] * 1000
            kill.splice = capture.splice(gap[1])
        window = (receiver.offset_at(kill.killed_at - 1.0), receiver.offset_at(kill.killed_at + OBSERVE_S))
        kill.cc_errors = capture.cc_errors_between(*window)
    returns = []
    for offset, tsid in capture.owners[1:]:
        if tsid != MAIN_TSID:
            continue
        arrived = receiver.time_at(offset)
        if arrived is None:
            continue
        gap = receiver.largest_gap(arrived - 1.0, arrived + 1.0)
        errors = capture.cc_errors_between(receiver.offset_at(arrived - 1.0), receiver.offset_at(arrived + 1.0))
        frames = capture.frames_before_key(offset)
        returns.append(
            Return(
                arrived,
                None if gap is None else gap[0] * 1000,
                0.0 if gap is None else gap[2] - arrived,
                errors,
                frames is not None and frames[0] == 0,
            )
        )
    return KillResult(rounds, returns, len(capture.cc_errors), command, args.timeout_ms)


# --------------------------------------------------------------------------------------------------
# 2. decoding after the switch
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    arrived: float
    number: int
    key: bool
    luma: int

    @property
    def bars(self) -> bool:
        return self.luma >= BARS_LUMA


@dataclass
class DecodeResult:
    alive: bool
    host_busy_pct: float
    command: list[str]
    switch_ms: float | None = None
    pictures_after: int = 0  # decoded in the DECODE_WATCH_S after the switch
    last_second: int = 0  # decoded in the last second watched
    before_clean: list[Picture] = field(default_factory=list)  # shown after the switch, before a clean one
    relay_frames: tuple[int, bool] | None = None  # frames the relay sent before the backup's key frame
    first_ms: float | None = None  # switch -> first picture out of the decoder
    clean_ms: float | None = None  # switch -> first clean picture out of the decoder
    not_bars_after_clean: int = 0
    complaints: list[str] = field(default_factory=list)


def pictures(lines: list[tuple[float, str]]) -> list[Picture]:
    found = []
    for arrived, line in lines:
        match = FRAME_LINE.search(line)
        if match:
            found.append(Picture(arrived, int(match[1]), match[2] == "1", int(match[3])))
    return found


def run_decode(args: argparse.Namespace, procs: Processes, rng: random.Random) -> DecodeResult:
    in_port, out_port, tap_port = free_udp_ports(3)
    decoder = procs.start("decode-ffmpeg", decoder_command(out_port), pipe_stderr=True)
    lines = TimedLines(decoder, procs.log_dir / "decode-ffmpeg-stderr.log")
    wait_until(lambda: udp_bound(out_port), 15, "ffmpeg to listen", [decoder])
    # A second output to a timed receiver: what the relay sent, to tell its part from the decoder's.
    tap = start_receiver(procs, "decode-tap", tap_port)
    command = relay_command(
        in_port, [out_port, tap_port], timeout_ms=args.timeout_ms, holdoff_s=None, stats_interval=1.0
    )
    relay, log = start_relay(procs, "decode-relay", command, in_port)
    backup = start_backup(procs, "decode-backup", in_port)
    main = start_main(procs, "decode-main", in_port)

    def main_decoded() -> bool:
        shown = pictures(lines.snapshot())
        return log.active() == MAIN_ID and len(shown) > 2 * GOP and not any(p.bars for p in shown[-GOP:])

    wait_until(main_decoded, 40, "ffmpeg to decode the main encoder", [decoder, relay, main, backup])
    time.sleep(rng.uniform(1.0, 2.0))
    ticks = host_cpu_ticks()
    killed_wall, killed_at = time.time(), time.monotonic()
    procs.kill(main)
    time.sleep(DECODE_WATCH_S + 0.5)
    result = DecodeResult(decoder.poll() is None, host_busy_pct(ticks, host_cpu_ticks()), decoder_command(out_port))
    last = log.switch_after(killed_wall - 0.05, MAIN_ID)
    for process in (backup, relay, decoder, tap.process):
        procs.stop(process)
    lines.join()
    tap.join()
    gap = tap.largest_gap(killed_at, killed_at + DECODE_WATCH_S)
    if gap is not None:
        result.relay_frames = Capture(tap).frames_before_key(gap[1])
    if last is None:
        return result
    result.switch_ms = (last["at"] - killed_wall) * 1000
    switched = last["at"] - WALL_OFFSET
    after = [p for p in pictures(lines.snapshot()) if switched < p.arrived <= switched + DECODE_WATCH_S]
    result.pictures_after = len(after)
    result.last_second = sum(p.arrived > switched + DECODE_WATCH_S - 1 for p in after)
    result.first_ms = (after[0].arrived - switched) * 1000 if after else None
    clean = next((index for index, p in enumerate(after) if p.key and p.bars), None)
    if clean is not None:
        result.before_clean = after[:clean]
        result.clean_ms = (after[clean].arrived - switched) * 1000
        result.not_bars_after_clean = sum(not p.bars for p in after[clean:])
    result.complaints = [
        line
        for arrived, line in lines.snapshot()
        if arrived > killed_at and " @ 0x" in line and "Parsed_showinfo" not in line
    ]
    return result


# --------------------------------------------------------------------------------------------------
# 3. flapping
# --------------------------------------------------------------------------------------------------


@dataclass
class FlapResult:
    seconds: float
    holdoff_s: float
    switches: list[tuple[float, SwitchLine]]  # (seconds since the flapping began, switch)
    windows: list[int]
    sliding_max: int
    counter_delta: int | None
    unhealthy: tuple[int, int]  # stats samples with the main unhealthy, of all samples while flapping
    downs_seen: int
    dropped: int
    failback_s: float | None  # after the flapping stopped
    after_switches: list[SwitchLine]
    output_gap_ms: float | None
    cc_errors: int
    host_busy_pct: float
    command: list[str]


def run_flap(args: argparse.Namespace, procs: Processes) -> FlapResult:
    in_port, out_port = free_udp_ports(2)
    receiver = start_receiver(procs, "flap-receiver", out_port)
    command = relay_command(
        in_port, [out_port], timeout_ms=args.timeout_ms, holdoff_s=FLAP_HOLDOFF_S, stats_interval=0.2
    )
    relay, log = start_relay(procs, "flap-relay", command, in_port)
    link = FlappingLink(in_port, FLAP_PERIOD_S, FLAP_DOWN_S)
    try:
        backup = start_backup(procs, "flap-backup", in_port)
        main = start_main(procs, "flap-main", link.port)
        alive = [relay, main, backup]
        wait_until(lambda: latest_tsid(receiver) == MAIN_TSID, 30, "the output to carry the main encoder", alive)
        time.sleep(3.0)  # past the relay's start-up settling, steady on the main
        before = log.stats()
        ticks = host_cpu_ticks()
        started_wall, started = time.time(), link.start_flapping()
        print(f"  flapping the main's link for {args.flap_seconds:g} s ...", flush=True)
        time.sleep(args.flap_seconds)
        during = log.stats()[len(before) :]
        busy = host_busy_pct(ticks, host_cpu_ticks())
        stopped_wall, stopped = time.time(), link.stop_flapping()
        print(f"  link steady again; waiting up to {FLAP_HOLDOFF_S + 5:g} s for the failback ...", flush=True)
        try:
            failback_s: float | None = wait_until(
                lambda: latest_tsid(receiver) == MAIN_TSID, FLAP_HOLDOFF_S + 5, "failback", alive
            )
        except RuntimeError:
            failback_s = None
        time.sleep(1.0)
        dropped = link.dropped
    finally:
        link.close()
    procs.stop_all()
    receiver.join()
    capture = Capture(receiver)
    all_switches = log.switches()
    switches = [(s.at - started_wall, s) for s in all_switches if started_wall <= s.at < stopped_wall]
    windows = [0] * math.ceil(args.flap_seconds / FLAP_HOLDOFF_S)
    for since, _ in switches:
        windows[min(len(windows) - 1, int(since // FLAP_HOLDOFF_S))] += 1
    sliding = max((sum(0 <= t - s < FLAP_HOLDOFF_S for t, _ in switches) for s, _ in switches), default=0)
    health = [line["switcher"]["health"][MAIN_ID]["healthy"] for line in during]
    downs = sum(1 for earlier, later in itertools.pairwise(health) if earlier and not later)
    counter = None
    if before and during:
        counter = during[-1]["switcher"]["switches"] - before[-1]["switcher"]["switches"]
    gap = receiver.largest_gap(started, stopped)
    return FlapResult(
        seconds=args.flap_seconds,
        holdoff_s=FLAP_HOLDOFF_S,
        switches=switches,
        windows=windows,
        sliding_max=sliding,
        counter_delta=counter,
        unhealthy=(health.count(False), len(health)),
        downs_seen=downs,
        dropped=dropped,
        failback_s=failback_s,
        after_switches=[s for s in all_switches if s.at >= stopped_wall],
        output_gap_ms=None if gap is None else gap[0] * 1000,
        host_busy_pct=busy,
        cc_errors=len(capture.cc_errors),
        command=command,
    )


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (width + 2) for width in widths) + "|",
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def kill_report(result: KillResult) -> list[tuple[bool, str]]:
    rows = []
    for kill in result.rounds:
        splice = kill.splice
        rows.append([
            str(kill.number),
            f"{kill.on_air_s:.1f}",
            ms(kill.gap_ms),
            ms(kill.switch_ms),
            str(kill.cc_errors),
            "-" if splice is None else str(splice.tsid),
            "-" if splice is None else splice.describe(),
            "-" if splice is None or splice.pcr_flagged is None else ("yes" if splice.pcr_flagged else "NO"),
            f"{kill.host_busy_pct:.0f}",
        ])  # fmt: skip
    print(table(["kill", "main on air after s", "gap ms", "kill->switch ms (relay)", "CC errors",
                 "tsid after", "PAT+PMT first (packets after gap)", "PCR discontinuity flagged", "host busy %"],
                rows))  # fmt: skip
    reasons: dict[str, int] = {}
    for kill in result.rounds:
        if kill.reason:
            alike = re.sub(r"no data for \d+ ms", "no data for N ms", kill.reason)
            reasons[alike] = reasons.get(alike, 0) + 1
    print("switch reasons (relay): " + ("; ".join(f"{r} ({n}x)" for r, n in reasons.items()) or "-"))
    if result.returns:
        print(
            f"returns to the main (planned switches: between rounds, and at start-up if the backup came first): "
            f"{len(result.returns)}; largest gap within 1 s of each, ms: "
            f"{', '.join(r.describe_gap() for r in result.returns)}"
            f"; CC errors {sum(r.cc_errors for r in result.returns)}; main's video starts on a key frame "
            f"{sum(r.on_key_frame for r in result.returns)}/{len(result.returns)}"
        )
    print(f"CC errors in the whole capture: {result.cc_total}")
    verdicts = []
    goal = result.timeout_ms + 50
    gaps = [kill.gap_ms for kill in result.rounds if kill.gap_ms is not None]
    switches = [kill.switch_ms for kill in result.rounds if kill.switch_ms is not None]
    missing = len(result.rounds) - len(gaps)
    if gaps:
        p50, worst = statistics.median(gaps), max(gaps)
        text = (f"kill gap: p50 {p50:.0f} ms, max {worst:.0f} ms over {len(gaps)} kills (goal <= {goal} ms = "
                f"timeout {result.timeout_ms} + 50)")  # fmt: skip
        if switches:
            text += (
                f"; kill->switch by the relay's stats p50 {statistics.median(switches):.0f} ms, max {max(switches):.0f}"
            )
        if missing:
            text += f"; {missing} kills without data"
        saturated = sum(kill.host_busy_pct >= SATURATED_HOST_PCT for kill in result.rounds)
        if saturated:
            text += f"; host >= {SATURATED_HOST_PCT:.0f} % busy in {saturated} of the rounds"
        verdicts.append((worst <= goal and not missing, text))
    else:
        verdicts.append((False, "kill gap: no measurement"))
    bad_psi = [kill.number for kill in result.rounds if kill.splice is None or not kill.splice.psi_first]
    wrong = [kill.number for kill in result.rounds if kill.splice is None or kill.splice.tsid != BACKUP_TSID]
    unflagged = [kill.number for kill in result.rounds if kill.splice is None or not kill.splice.pcr_flagged]
    cc = sum(kill.cc_errors for kill in result.rounds)
    ok = not (cc or bad_psi or wrong or unflagged)
    text = (f"stream across the kill switches: {cc} CC errors, backup's PAT+PMT first in "
            f"{len(result.rounds) - len(bad_psi)}/{len(result.rounds)}, PCR discontinuity flagged in "
            f"{len(result.rounds) - len(unflagged)}/{len(result.rounds)}")  # fmt: skip
    if wrong:
        text += f", not the backup after the gap in rounds {wrong}"
    verdicts.append((ok, text))
    return verdicts


def decode_report(result: DecodeResult) -> list[tuple[bool, str]]:
    stale = sum(not p.bars for p in result.before_clean)
    sent = "-"
    if result.relay_frames is not None:
        count, whole = result.relay_frames
        sent = f"{count} ({'none missing' if whole else 'SOME MISSING'})"
    rows = [
        ["ffmpeg still running after the switch", "yes" if result.alive else "NO"],
        ["kill -> switch ms (relay)", ms(result.switch_ms)],
        ["frames the relay sent after the switch before the backup's key frame", sent],
        [f"pictures decoded in the {DECODE_WATCH_S:g} s after the switch", str(result.pictures_after)],
        ["pictures decoded in the last of those seconds", str(result.last_second)],
        ["switch -> first picture out of ffmpeg, ms", ms(result.first_ms)],
        ["switch -> first clean picture (backup key frame) out of ffmpeg, ms", ms(result.clean_ms)],
        ["pictures shown before it (on the main's references)", f"{len(result.before_clean)} ({stale} not bars)"],
        ["pictures not from the backup after it", str(result.not_bars_after_clean)],
        ["decoder messages after the kill", str(len(result.complaints))],
        ["host busy % while watched", f"{result.host_busy_pct:.0f}"],
    ]  # fmt: skip
    print(table(["decoding the relay's output live (ffmpeg)", "value"], rows))
    for line in sorted(set(result.complaints))[:8]:
        print(f"  ffmpeg: {line.strip()}")
    if result.switch_ms is None:
        return [(False, f"decoding after the switch: the relay did not switch within {DECODE_WATCH_S:g} s of the kill")]
    decoding = result.alive and result.last_second >= FPS * 0.8
    # The wait for the backup's next key frame is at most one GOP. On top of it come the decoder's
    # own SRT latency and one frame: ffmpeg's TS demuxer hands a video PES on only when the next
    # one starts.
    goal_ms = GOP * 1000 // FPS + LATENCY_MS + 1000 // FPS
    clean = result.clean_ms is not None and result.clean_ms <= goal_ms and not result.not_bars_after_clean
    text = (f"decoding after the switch: ffmpeg {'kept' if result.alive else 'did NOT keep'} running, "
            f"{result.last_second} pictures in the last second watched; first clean picture {ms(result.clean_ms)} ms "
            f"after the switch (goal <= one GOP {GOP * 1000 // FPS} + SRT latency {LATENCY_MS} + one frame "
            f"{1000 // FPS} = {goal_ms} ms), {len(result.before_clean)} pictures shown before it")  # fmt: skip
    return [(decoding and clean, text)]


def flap_report(result: FlapResult) -> list[tuple[bool, str]]:
    rows = []
    for index, count in enumerate(result.windows):
        start = index * result.holdoff_s
        rows.append([f"{start:g}-{min(start + result.holdoff_s, result.seconds):g} s", str(count)])
    print(table([f"flapping window ({result.holdoff_s:g} s hold-off)", "switches"], rows))
    for since, switch in result.switches:
        print(f"  +{since:.2f} s: {switch.source} -> {switch.target}: {switch.reason}")
    down, total = result.unhealthy
    print(f"main unhealthy in {down}/{total} stats samples (every 0.2 s) while flapping, {result.downs_seen} "
          f"down-turns seen; datagrams dropped by the link: {result.dropped}")  # fmt: skip
    print(f"switch counter while flapping (relay stats): {result.counter_delta}; largest output gap while "
          f"flapping: {ms(result.output_gap_ms)} ms; CC errors in the whole capture: {result.cc_errors}; "
          f"host {result.host_busy_pct:.0f} % busy")  # fmt: skip
    for switch in result.after_switches:
        print(f"  after the flapping: {switch.source} -> {switch.target}: {switch.reason}")
    if result.counter_delta is not None and result.counter_delta != len(result.switches):
        print(f"  note: the relay's switch counter says {result.counter_delta}, its log {len(result.switches)}")
    verdicts = [(
        result.sliding_max <= 1,
        f"flapping: at most {result.sliding_max} switch(es) within any {result.holdoff_s:g} s over "
        f"{result.seconds:g} s of a link cut {FLAP_DOWN_S:g} s every {FLAP_PERIOD_S:g} s (goal <= 1 per hold-off); "
        f"per window {result.windows}",
    )]  # fmt: skip
    returned = [s for s in result.after_switches if s.target == MAIN_ID]
    verdicts.append((
        result.failback_s is not None and len(result.after_switches) == 1 and len(returned) == 1,
        f"after the flapping stopped: {len(result.after_switches)} switch(es), back on the main after "
        f"{'never' if result.failback_s is None else f'{result.failback_s:.1f} s'} (hold-off {result.holdoff_s:g} s)",
    ))  # fmt: skip
    return verdicts


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/failover.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="kill rounds (default 10)")
    parser.add_argument("--flap-seconds", type=float, default=30.0, help="how long the main flaps (default 30)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 kills, 12 s of flapping")
    parser.add_argument("--timeout-ms", type=int, default=300, help="the relay's input health timeout (default 300)")
    parser.add_argument("--only", default="kill,decode,flap", help="which parts to run, e.g. kill,flap")
    parser.add_argument("--seed", type=int, default=None, help="repeatable kill timing")
    parser.add_argument("--keep-logs", action="store_true", help="keep every process's log")
    args = parser.parse_args(argv)
    if args.quick:
        args.kills = min(args.kills, 3)
        args.flap_seconds = min(args.flap_seconds, 12.0)
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if not parts or parts - {"kill", "decode", "flap"}:
        parser.error("--only takes kill, decode and flap, comma-separated")
    args.parts = parts
    return args


def run(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if missing_tools("ffmpeg", "srt-live-transmit"):
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    procs = Processes(log_dir, stop_signal=signal.SIGINT)
    rng = random.Random(args.seed)  # noqa: S311
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    started, load = time.monotonic(), os.getloadavg()[0]
    failures = []
    steps = [("kill", "kill gap", lambda: run_kills(args, procs, rng)),
             ("decode", "decoding after the switch", lambda: run_decode(args, procs, rng)),
             ("flap", "flapping", lambda: run_flap(args, procs))]  # fmt: skip
    results: dict[str, Any] = {}
    try:
        for key, label, step in steps:
            if key not in args.parts:
                continue
            print(f"[{label}] ...", flush=True)
            try:
                results[key] = step()
            except (RuntimeError, OSError) as exc:
                failures.append(f"{label}: {exc}")
            finally:
                procs.stop_all()
    except BaseException:
        print(f"process logs: {log_dir}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
    kills, decode, flap = results.get("kill"), results.get("decode"), results.get("flap")
    elapsed = time.monotonic() - started
    print()
    print(f"Failover bench: relay = python -m media_engine relay in its own process, two live ffmpeg encoders "
          f"(320x240 {FPS} fps H.264 GOP {GOP} + AAC, ~0.9 Mbit/s) on one SRT port by stream ID, SRT latency "
          f"{LATENCY_MS} ms on every hop, loopback, {os.cpu_count()} CPUs; "
          f"health timeout {args.timeout_ms} ms; load average at start {load:.1f}")  # fmt: skip
    print("command: " + shlex.join(["python", "bench/failover.py", *argv]) + f"  ({elapsed:.0f} s)")
    verdicts: list[tuple[bool, str]] = []
    if kills is not None:
        print()
        print(f"1. kill gap: SIGKILL of the main encoder, {len(kills.rounds)} rounds, one relay")
        print("relay: " + display(kills.command))
        verdicts += kill_report(kills)
    if decode is not None:
        print()
        print("2. decoding after the switch")
        print("decoder: " + display(decode.command))
        verdicts += decode_report(decode)
    if flap is not None:
        print()
        print("3. flapping main input")
        print("relay: " + display(flap.command))
        verdicts += flap_report(flap)
    print()
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    for failure in failures:
        print(f"FAILED  {failure}")
    if failures or args.keep_logs or not all(ok for ok, _ in verdicts):
        print(f"process logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0 if verdicts and all(ok for ok, _ in verdicts) and not failures else 1


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(argv, run)


if __name__ == "__main__":
    sys.exit(main())
