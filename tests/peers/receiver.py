"""An SRT receiver that remembers when each piece of the stream arrived.

It runs a real peer, ``srt-live-transmit <url> file://con``, and reads its standard output from a
thread, stamping every chunk with ``time.monotonic()``. A failover test can then ask how long the
output went quiet around the moment it killed the primary encoder, and which TS packets came
after that moment::

    with TimedReceiver(slt_url("", port, mode="listener")) as receiver:
        ...
        killed_at = time.monotonic()
        stop_pid(primary.pid)
        ...
        assert receiver.largest_gap(since=killed_at - 1, until=killed_at + 3) < 1.0
        later = receiver.packets_after(killed_at)
"""

from __future__ import annotations

import bisect
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.peers import ts_check
from tests.support.processes import REPO_ROOT, environment

_READ_SIZE = 1 << 16


@dataclass(frozen=True)
class Gap:
    """Silence between two chunks; ``offset`` is where the bytes after it start."""

    start: float
    end: float
    offset: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


class TimedReceiver:
    def __init__(self, url: str, *, file: Path | None = None, name: str = "srt-live-transmit timed") -> None:
        self.url = url
        self.file = file
        self.name = name
        self.popen: subprocess.Popen[bytes] | None = None
        self.stopped_at: float | None = None
        self._times: list[float] = []
        self._chunks: list[bytes] = []
        self._ends: list[int] = []  # byte count after each chunk
        self._log: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # lifecycle

    def start(self) -> TimedReceiver:
        if self.popen is not None:
            raise RuntimeError(f"{self.name} was already started")
        command = ["srt-live-transmit", "-q", self.url, "file://con"]
        # srt-live-transmit writes through stdio, which gathers 4 KiB blocks when stdout is a pipe:
        # arrival times would be off by tens of ms and the tail would stay inside until exit.
        # stdbuf execs the command, so the PID is still the receiver's own.
        if shutil.which("stdbuf"):
            command = ["stdbuf", "-o0", *command]
        self.popen = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._threads = [
            threading.Thread(target=self._read_stream, name=f"stream of {self.pid}", daemon=True),
            threading.Thread(target=self._read_log, name=f"log of {self.pid}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 15) -> bytes:
        """Ctrl-C by PID (SIGKILL if ignored), then read the pipe to its end. Returns all the data."""
        if self.popen is None:
            return self.data
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout_s)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return self.data

    def __enter__(self) -> TimedReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.popen.pid

    def _read_stream(self) -> None:
        assert self.popen is not None
        assert self.popen.stdout is not None
        descriptor = self.popen.stdout.fileno()
        sink = self.file.open("wb") if self.file is not None else None
        try:
            while chunk := os.read(descriptor, _READ_SIZE):
                arrived = time.monotonic()
                with self._lock:
                    self._times.append(arrived)
                    self._chunks.append(chunk)
                    self._ends.append((self._ends[-1] if self._ends else 0) + len(chunk))
                if sink is not None:
                    sink.write(chunk)
        finally:
            if sink is not None:
                sink.close()

    def _read_log(self) -> None:
        assert self.popen is not None
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._lock:
                self._log.append(line.decode("utf-8", errors="replace"))

    # what arrived

    @property
    def data(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    @property
    def arrivals(self) -> list[tuple[float, bytes]]:
        """(time.monotonic() when read, chunk) in arrival order."""
        with self._lock:
            return list(zip(self._times, self._chunks, strict=True))

    @property
    def received(self) -> int:
        with self._lock:
            return self._ends[-1] if self._ends else 0

    def log(self) -> str:
        """What srt-live-transmit said on its standard error."""
        with self._lock:
            return "".join(self._log)

    def wait_bytes(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` bytes have arrived; fail early if the receiver exited."""
        deadline = time.monotonic() + timeout
        while self.received < count:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode} after {self.received} of {count} bytes:\n"
                    f"{self.log()[-4000:]}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name} got {self.received} of {count} bytes in {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    # timing

    def gaps(self, since: float | None = None, until: float | None = None) -> list[Gap]:
        """Silences between consecutive chunks that overlap [since, until].

        With ``until``, the silence from the last chunk up to ``until`` (or up to now, or to stop())
        counts as well, so an output that never came back shows as one long gap, not as none.
        """
        with self._lock:
            times, ends = list(self._times), list(self._ends)
        low = float("-inf") if since is None else since
        high = float("inf") if until is None else until
        found = [
            Gap(earlier, later, ends[number])
            for number, (earlier, later) in enumerate(itertools.pairwise(times))
            if later >= low and earlier <= high
        ]
        if until is not None and times and times[-1] <= until:
            quiet_until = min(until, self.stopped_at or time.monotonic())
            if quiet_until > times[-1]:
                found.append(Gap(times[-1], quiet_until, ends[-1]))
        return found

    def largest_gap(self, since: float | None = None, until: float | None = None) -> float:
        """Seconds of the longest silence overlapping [since, until] (see ``gaps``); 0.0 if none."""
        return max((gap.seconds for gap in self.gaps(since, until)), default=0.0)

    def widest_gap(self, since: float | None = None, until: float | None = None) -> Gap | None:
        """The longest silence itself: when it began and ended, and the byte offset after it."""
        return max(self.gaps(since, until), key=lambda gap: gap.seconds, default=None)

    def offset_at(self, moment: float) -> int:
        """How many bytes had arrived by ``moment`` (a time.monotonic() value)."""
        with self._lock:
            count = bisect.bisect_right(self._times, moment)
            return self._ends[count - 1] if count else 0

    def arrival_of(self, offset: int) -> float:
        """When the byte at ``offset`` arrived."""
        with self._lock:
            chunk = bisect.bisect_right(self._ends, offset)
            if chunk < len(self._times):
                return self._times[chunk]
        raise LookupError(f"byte {offset} has not arrived (got {self.received})")

    def packets(self) -> list[ts_check.Packet]:
        """Everything so far as TS packets; a packet still half-way through the pipe is left out."""
        return ts_check.parse(self.data, allow_partial_tail=True)

    def packets_after(self, moment: float) -> list[ts_check.Packet]:
        """The TS packets whose first byte arrived after ``moment`` (indices stay those of the capture)."""
        offset = self.offset_at(moment)
        return [packet for packet in self.packets() if packet.offset >= offset]
