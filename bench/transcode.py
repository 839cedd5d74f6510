"""Transcoding throughput: our pipeline against the ffmpeg CLI, 1080p30 to 720p30 H.264 (issue #7).

    python bench/transcode.py [--seconds 20] [--rounds 3] [--bitrate-kbps 3000]

The bench encodes a 1080p30 H.264 + AAC MPEG-TS source with ffmpeg (testsrc2 and a sine tone, GOP 60)
into a temporary directory, then transcodes it as fast as it can to 720p30 H.264 (x264 preset
veryfast, the given bitrate with maxrate and bufsize equal to it, a fixed GOP of 60 with no scene-cut
key frames, audio copied) into MPEG-TS files, twice per round: once with the ffmpeg CLI and once with
our pipeline (``media_engine.transcoder.pipeline.Transcoder``). Both run as child processes, ours as
``python -m bench.transcode ours ...``, so each tool's wall time and CPU time (user + sys, from the
kernel's accounting of the reaped child) are measured the same way, start-up included. The runs
alternate, ffmpeg first, so a change in the machine's load touches both alike.

fps is the source's frame count over the child's wall time. The goal is ours/ffmpeg >= 0.95.

Numbers are only trusted once ffprobe has checked each output: 1280x720 H.264 with as many frames as
the source, and the source's audio codec. A wrong output ends the bench with a non-zero exit.

x264 writes its version and every option it ran with into the stream (an SEI message starting
``x264 - core``). The bench reads that string from each output and prints both, with the options that
differ, so the two runs can be seen to encode alike; the x264 library each tool loaded is shown too.
The scaler is not in that string: both scale bicubic (ffmpeg's default, and our pipeline's). Both
run x264 with frame threads, ffmpeg's default, which the x264 options printed show.

Every process the bench starts is stopped by its PID when done, on Ctrl-C, or on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python bench/transcode.py): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.processes import Processes, bench_main, interrupt, missing_tools

SOURCE_WIDTH, SOURCE_HEIGHT, FPS = 1920, 1080, 30
SOURCE_VIDEO_BPS = 12_000_000  # well above the target, so the source's own artefacts stay out of the way
TARGET_WIDTH, TARGET_HEIGHT = 1280, 720
GOP = 60
PRESET = "veryfast"
FPS_GOAL = 0.95
TOOLS = ("ffmpeg", "ours")
X264_SEI = re.compile(rb"x264 - core [^\x00]*")


@dataclass(frozen=True)
class Target:
    """The one rendition both tools make."""

    bitrate_bps: int
    width: int = TARGET_WIDTH
    height: int = TARGET_HEIGHT
    gop: int = GOP
    preset: str = PRESET


# --------------------------------------------------------------------------------------------------
# media: the source, the two commands, what ffprobe and x264 say about an output
# --------------------------------------------------------------------------------------------------


def make_source(directory: Path, seconds: int) -> Path:
    path = directory / f"source-{SOURCE_WIDTH}x{SOURCE_HEIGHT}p{FPS}-{seconds}s.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={SOURCE_WIDTH}x{SOURCE_HEIGHT}:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
         "-t", str(seconds), "-map", "0:v", "-map", "1:a",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", str(SOURCE_VIDEO_BPS),
         "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0",
         "-c:a", "aac", "-b:a", "128k", "-ac", "2",
         "-f", "mpegts", str(path)],
        check=True,
    )  # fmt: skip
    return path


def ffmpeg_command(source: Path, output: Path, target: Target) -> list[str]:
    rate = str(target.bitrate_bps)
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "info", "-y", "-i", str(source),
            "-map", "0:v:0", "-map", "0:a:0", "-vf", f"scale={target.width}:{target.height}",
            "-c:v", "libx264", "-preset", target.preset, "-b:v", rate, "-maxrate", rate, "-bufsize", rate,
            "-g", str(target.gop), "-keyint_min", str(target.gop), "-sc_threshold", "0",
            "-c:a", "copy", "-f", "mpegts", str(output)]  # fmt: skip


def ours_command(source: Path, output: Path, target: Target) -> list[str]:
    return [sys.executable, "-m", "bench.transcode", "ours", "--source", str(source), "--output", str(output),
            "--width", str(target.width), "--height", str(target.height), "--bitrate", str(target.bitrate_bps),
            "--gop", str(target.gop), "--preset", target.preset]  # fmt: skip


def display(command: list[str]) -> str:
    return shlex.join(["python", *command[1:]] if command[0] == sys.executable else command)


@dataclass(frozen=True)
class Probe:
    video_codec: str
    width: int
    height: int
    video_frames: int
    audio_codec: str
    audio_packets: int


def probe(path: Path) -> Probe:
    """Packets are counted, not decoded: in MPEG-TS one H.264 packet is one frame."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-of", "json",
         "-show_entries", "stream=codec_type,codec_name,width,height,nb_read_packets", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    streams = json.loads(result.stdout).get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio = next((s for s in streams if s.get("codec_type") == "audio"), {})
    return Probe(
        video_codec=video.get("codec_name", "none"),
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        video_frames=int(video.get("nb_read_packets", 0)),
        audio_codec=audio.get("codec_name", "none"),
        audio_packets=int(audio.get("nb_read_packets", 0)),
    )


def output_problems(found: Probe, source: Probe, target: Target) -> list[str]:
    problems = []
    if found.video_codec != "h264":
        problems.append(f"video codec {found.video_codec}, not h264")
    if (found.width, found.height) != (target.width, target.height):
        problems.append(f"{found.width}x{found.height}, not {target.width}x{target.height}")
    if found.video_frames != source.video_frames:
        problems.append(f"{found.video_frames} video frames, the source has {source.video_frames}")
    if found.audio_codec != source.audio_codec:
        problems.append(f"audio {found.audio_codec}, the source's is {source.audio_codec}")
    return problems


@dataclass(frozen=True)
class X264Info:
    version: str  # e.g. "core 164 r3095 baf180e"
    options: dict[str, str]
    raw: str


def x264_info(path: Path) -> X264Info | None:
    """The settings string x264 puts in the first key frame. Read from the H.264 elementary stream,
    not the TS file: the string is longer than a TS packet's payload and would be cut by headers."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-frames:v", "1", "-f", "h264", "-"],
        check=False, capture_output=True,
    )  # fmt: skip
    match = X264_SEI.search(result.stdout)
    if match is None:
        return None
    raw = match.group().decode("ascii", errors="replace")
    version = raw.removeprefix("x264 - ").split(" - ", 1)[0]
    options_text = raw.split(" - options: ", 1)[1] if " - options: " in raw else ""
    options = dict(item.split("=", 1) if "=" in item else (item, "") for item in options_text.split())
    return X264Info(version, options, raw)


def options_diff(first: dict[str, str], second: dict[str, str]) -> list[str]:
    differing = [key for key in sorted(set(first) | set(second)) if first.get(key) != second.get(key)]
    return [f"{key}: {first.get(key, '-')} vs {second.get(key, '-')}" for key in differing]


def ffmpeg_x264_library() -> str:
    """Where the ffmpeg CLI's x264 comes from, as the dynamic linker resolves it."""
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    result = subprocess.run(["ldd", ffmpeg], check=False, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if "libx264" in line:
            return line.split("=>")[-1].split("(")[0].strip()
    return "linked into ffmpeg (no shared libx264)"


def ffmpeg_version() -> str:
    result = subprocess.run(["ffmpeg", "-hide_banner", "-version"], check=False, capture_output=True, text=True)
    first = result.stdout.splitlines()[0] if result.stdout else "unknown"
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0]


# --------------------------------------------------------------------------------------------------
# our pipeline, run as a child process of the bench
# --------------------------------------------------------------------------------------------------


def _loaded_x264() -> str:
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libx264" in line}
    return ", ".join(sorted(paths)) or "linked into libavcodec (no shared libx264)"


def ours_main(argv: Sequence[str]) -> int:
    """Transcode one file with our pipeline; print one JSON line with its figures."""
    parser = argparse.ArgumentParser(prog="ours")
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--bitrate", type=int, required=True)
    parser.add_argument("--gop", type=int, required=True)
    parser.add_argument("--preset", required=True)
    args = parser.parse_args(argv)

    import av

    from media_engine.config import TranscodeSettings
    from media_engine.transcoder import encoders
    from media_engine.transcoder.pipeline import Transcoder

    rendition = TranscodeSettings(
        name=f"{args.height}p",
        video_codec="h264",
        encoder="software",  # x264 against x264, whatever hardware the machine has
        width=args.width,
        height=args.height,
        video_bitrate_bps=args.bitrate,
        gop=args.gop,
        preset=args.preset,
        audio_codec="copy",
    )
    with open(args.source, "rb") as source, open(args.output, "wb") as output:
        # Chosen here rather than by the node's encoder probe, which a worker runs once at start.
        chosen = [encoders.choose("h264", "software", ["software"])]
        transcoder = Transcoder(source, [rendition], [output.write], name="bench", chosen=chosen)
        started = time.monotonic()
        transcoder.run()
        run_s = time.monotonic() - started
    result = {
        "run_s": run_s,
        "frames": transcoder.stats.frames,
        "fps": round(transcoder.stats.fps, 2),
        "dropped_frames": transcoder.stats.dropped_frames,
        "duplicated_frames": transcoder.stats.duplicated_frames,
        "decode_errors": transcoder.stats.decode_errors,
        "x264_library": _loaded_x264(),
        "pyav": av.__version__,
        "ffmpeg_libraries": av.ffmpeg_version_info,
    }
    print(json.dumps(result, default=str), flush=True)
    return 0


HELPERS = {"ours": ours_main}


# --------------------------------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    tool: str
    round: int
    wall_s: float
    cpu_s: float
    frames: int
    own: dict[str, Any] = field(default_factory=dict)  # what our helper reported about itself

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


def run_child(procs: Processes, name: str, command: list[str], *, pipe_stdout: bool) -> tuple[float, float, int, str]:
    """(wall s, CPU s, exit code, stdout). The child is reaped with wait4, which hands back the
    kernel's user and system time for it and everything it waited for."""
    started = time.monotonic()
    process = procs.start(name, command, pipe_stdout=pipe_stdout)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall_s = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out = process.stdout.read().decode(errors="replace") if process.stdout is not None else ""
    procs.stop(process)  # already reaped: only forgets it
    return wall_s, usage.ru_utime + usage.ru_stime, process.returncode, out


@dataclass
class Outcome:
    runs: list[Run] = field(default_factory=list)
    x264: dict[str, X264Info | None] = field(default_factory=dict)
    x264_library: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_frames: int = 0


def run_rounds(args: argparse.Namespace, work: Path, procs: Processes, source: Path, outcome: Outcome) -> None:
    target = Target(bitrate_bps=args.bitrate_kbps * 1000)
    source_probe = probe(source)
    outcome.source_frames = source_probe.video_frames
    commands = {"ffmpeg": ffmpeg_command, "ours": ours_command}
    outcome.versions["ffmpeg"] = f"ffmpeg {ffmpeg_version()}"
    outcome.x264_library["ffmpeg"] = ffmpeg_x264_library()
    for number in range(1, args.rounds + 1):
        for tool in args.tools:
            output = work / f"{tool}-{number}.ts"
            command = commands[tool](source, output, target)
            outcome.commands.setdefault(tool, command)
            print(f"  round {number}/{args.rounds}: {tool} ...", flush=True)
            name = f"{tool}-{number}"
            wall_s, cpu_s, code, out = run_child(procs, name, command, pipe_stdout=tool == "ours")
            if code != 0:
                outcome.failures.append(f"{tool}, round {number}: exited with {code} (log: {procs.log_path(name)})")
                return
            own = json.loads(out.strip().splitlines()[-1]) if tool == "ours" and out.strip() else {}
            found = probe(output)
            problems = output_problems(found, source_probe, target)
            if problems:
                outcome.failures.append(f"{tool}, round {number}: wrong output: " + "; ".join(problems))
                return
            if found.audio_packets != source_probe.audio_packets:
                outcome.notes.append(f"{tool}, round {number}: {found.audio_packets} audio packets, "
                                     f"the source has {source_probe.audio_packets}")  # fmt: skip
            outcome.runs.append(Run(tool, number, wall_s, cpu_s, found.video_frames, own))
            if tool not in outcome.x264:
                outcome.x264[tool] = x264_info(output)
                if tool == "ours":
                    outcome.x264_library[tool] = own.get("x264_library", "unknown")
                    outcome.versions[tool] = f"PyAV {own.get('pyav')} on FFmpeg {own.get('ffmpeg_libraries')}"
            if not args.keep_files:
                output.unlink()  # a 20 s output is small, but rounds add up


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (width + 2) for width in widths) + "|"]  # fmt: skip
    for row in rows:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def medians(runs: list[Run], tool: str) -> tuple[float, float] | None:
    mine = [run for run in runs if run.tool == tool]
    if not mine:
        return None
    return statistics.median(run.fps for run in mine), statistics.median(run.cpu_s for run in mine)


def report(args: argparse.Namespace, argv: Sequence[str], outcome: Outcome, loads: tuple[float, float]) -> bool:
    """Prints the results; True when the fps goal was met (or could not be judged)."""
    print()
    print(f"Transcode bench: {SOURCE_WIDTH}x{SOURCE_HEIGHT}p{FPS} H.264 + AAC MPEG-TS source ({args.seconds} s, "
          f"{outcome.source_frames} frames, testsrc2 + sine, {SOURCE_VIDEO_BPS // 1_000_000} Mbit/s, GOP {GOP}) -> "
          f"{TARGET_WIDTH}x{TARGET_HEIGHT}p{FPS} H.264 x264 {PRESET}, {args.bitrate_kbps} kbit/s "
          f"(maxrate = bufsize = bitrate), GOP {GOP} fixed, bicubic scaling, audio copied, MPEG-TS; "
          f"as fast as possible; "
          f"{os.cpu_count()} CPUs; load average {loads[0]:.2f} at start, {loads[1]:.2f} at end")  # fmt: skip
    print("command: " + shlex.join(["python", "bench/transcode.py", *argv]))
    for tool, command in outcome.commands.items():
        print(f"{tool}: {display(command)}")
    for tool in outcome.commands:
        print(f"{tool} runs on: {outcome.versions.get(tool, 'unknown')}; x264 loaded: "
              f"{outcome.x264_library.get(tool, 'unknown')}")  # fmt: skip

    if outcome.runs:
        print()
        rows = [[run.tool, str(run.round), f"{run.wall_s:.2f}", f"{run.fps:.1f}", f"{run.cpu_s:.2f}",
                 f"{run.cpu_s / run.wall_s:.2f}"] for run in outcome.runs]  # fmt: skip
        print(table(["tool", "round", "wall s", "fps", "CPU s (user+sys)", "CPU s / wall s"], rows))
        ours_runs = [run for run in outcome.runs if run.tool == "ours" and run.own.get("run_s")]
        if ours_runs:
            inside = statistics.median(run.frames / run.own["run_s"] for run in ours_runs)
            overhead = statistics.median(run.wall_s - run.own["run_s"] for run in ours_runs)
            own = ours_runs[-1].own
            print(f"ours inside its process (Transcoder.run only): {inside:.1f} fps median; start-up and exit "
                  f"{overhead:.2f} s median; its own stats (last round): frames {own.get('frames')}, fps "
                  f"{own.get('fps')}, dropped {own.get('dropped_frames')}, repeated {own.get('duplicated_frames')}, "
                  f"decode errors {own.get('decode_errors')}")  # fmt: skip

    print()
    rows = []
    found = {tool: medians(outcome.runs, tool) for tool in args.tools}
    for tool, values in found.items():
        if values is not None:
            rows.append([tool, f"{values[0]:.1f}", f"{values[1]:.2f}"])
    if rows:
        print(table(["tool (medians)", "fps", "CPU s"], rows))
    met = True
    ffmpeg, ours = found.get("ffmpeg"), found.get("ours")
    if ffmpeg and ours:
        fps_ratio, cpu_ratio = ours[0] / ffmpeg[0], ours[1] / ffmpeg[1]
        met = fps_ratio >= FPS_GOAL
        print(f"ours/ffmpeg: fps {fps_ratio:.3f} (goal >= {FPS_GOAL}), CPU s {cpu_ratio:.3f}")

    print()
    for tool, info in outcome.x264.items():
        print(f"x264 settings written by {tool}: " + (info.raw if info else "none found in the output"))
    first, second = (outcome.x264.get(tool) for tool in TOOLS)
    differ: list[str] | None = None
    if first is not None and second is not None:
        differ = options_diff(first.options, second.options)
        versions = f"x264 ffmpeg: {first.version}; ours: {second.version}"
        if differ:
            print(f"x264 options that differ (ffmpeg vs ours): {'; '.join(differ)} ({versions})")
        else:
            print(f"x264 options: all {len(first.options)} identical ({versions})")

    print()
    if differ is not None:
        print(f"{'MISS' if differ else 'PASS'}  both runs encode with the same x264 options")
    if ffmpeg and ours:
        print(f"{'PASS' if met else 'MISS'}  ours/ffmpeg fps >= {FPS_GOAL}")
    for note in outcome.notes:
        print(f"note: {note}")
    for failure in outcome.failures:
        print(f"FAILED  {failure}")
    return met


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/transcode.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of the source (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool, alternated (default 3)")
    parser.add_argument("--bitrate-kbps", type=int, default=3000, help="target video bitrate (default 3000)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="ffmpeg,ours (default) or one of them")
    parser.add_argument("--keep-files", action="store_true", help="keep the source, the outputs and the logs")
    args = parser.parse_args(argv)
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    if not tools or set(tools) - set(TOOLS):
        parser.error("--tools takes ffmpeg and ours, comma-separated")
    if args.seconds < 1 or args.rounds < 1 or args.bitrate_kbps < 1:
        parser.error("--seconds, --rounds and --bitrate-kbps must be positive")
    args.tools = [tool for tool in TOOLS if tool in tools]
    return args


def run(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if missing_tools("ffmpeg", "ffprobe"):
        return 2
    if "ours" in args.tools:
        try:
            import media_engine.transcoder.pipeline  # noqa: F401
        except ImportError as exc:
            print(f"error: our pipeline cannot be imported ({exc}); run with --tools ffmpeg", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="transcode-bench-"))
    procs = Processes(work, stop_signal=signal.SIGINT)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    outcome = Outcome()
    load_start = os.getloadavg()[0]
    try:
        print(f"encoding the {args.seconds} s source ...", flush=True)
        source = make_source(work, args.seconds)
        run_rounds(args, work, procs, source, outcome)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        outcome.failures.append(str(exc))
    except BaseException:
        print(f"files and logs: {work}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
    report(args, argv, outcome, (load_start, os.getloadavg()[0]))
    if outcome.failures or args.keep_files:
        print(f"files and logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if outcome.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(argv, run, HELPERS)


if __name__ == "__main__":
    sys.exit(main())
