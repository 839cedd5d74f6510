"""What every bench needs around the programs it runs: start them detached with a log each, stop
each by its own PID (never by name), and read the CPU they and the machine used."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


class Processes:
    """Everything a bench started. ``stop_signal`` is what asks a child to end cleanly: SIGTERM for
    helpers that print their result on it, SIGINT for ffmpeg and srt-live-transmit as Ctrl-C would."""

    def __init__(self, log_dir: Path, stop_signal: signal.Signals = signal.SIGTERM) -> None:
        self.log_dir = log_dir
        self.stop_signal = stop_signal
        self._running: list[subprocess.Popen] = []

    def start(
        self, name: str, command: list[str], *, pipe_stdout: bool = False, pipe_stderr: bool = False
    ) -> subprocess.Popen:
        """A session of its own: Ctrl-C reaches the bench alone, which then stops every child in
        order. What is not piped goes to ``<log_dir>/<name>.log``."""
        with open(self.log_path(name), "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log,
                stderr=subprocess.PIPE if pipe_stderr else log,
                start_new_session=True,
            )
        self._running.append(process)
        return process

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL: the way an encoder dies when its machine or its power goes."""
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self._forget(process)

    def stop(self, process: subprocess.Popen, timeout_s: float = 5.0) -> None:
        """The stop signal, then SIGKILL if the process is still there after ``timeout_s``."""
        if process.poll() is None:
            os.kill(process.pid, self.stop_signal)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self._forget(process)

    def result(self, process: subprocess.Popen, timeout_s: float = 15.0) -> dict[str, Any]:
        """Stop a helper that prints one JSON line when told to stop, and return that line."""
        process.send_signal(signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # It may have printed its result and then hung in libsrt's clean-up: keep what it said.
            process.kill()
            out, _ = process.communicate()
        self.stop(process)
        lines = out.decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else {"error": f"no result (exit {process.returncode})"}

    def _forget(self, process: subprocess.Popen) -> None:
        if process in self._running:
            self._running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self._running)):
            self.stop(process)


def missing_tools(*names: str) -> bool:
    """Say which peer programs are not installed; True when one is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    for name in missing:
        print(f"error: {name} is not installed", file=sys.stderr)
    return bool(missing)


def interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # so a kill of the bench still runs its clean-up


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def host_busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = (a - b for a, b in zip(after, before, strict=True))
    return 100 * busy / total if total else 0.0


def bench_main(
    argv: Sequence[str] | None,
    run: Callable[[list[str]], int],
    helpers: Mapping[str, Callable[[list[str]], int]] | None = None,
) -> int:
    """A bench's command line: ``argv`` (default: the process's own) goes to ``run``, or to one of
    the ``helpers`` the bench starts as child processes of its own when it names one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and helpers and args[0] in helpers:
        return helpers[args[0]](args[1:])
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; every process the bench started has been stopped", file=sys.stderr)
        return 130
