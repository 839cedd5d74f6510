"""Supervision of the few long-running processes that make up a single-machine gateway.

Plain processes and signals, no Django: the ``serve`` command decides what to run, this module
keeps those processes alive together and stops them together. The rule is simple on purpose: if
one child exits, the gateway is broken, so the others are stopped and the caller exits non-zero
for whatever runs it (systemd, a container runtime, an operator's terminal) to notice.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

POLL_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: stop everything and exit cleanly."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildDied(Exception):
    """One child exited on its own; the gateway cannot go on without it."""

    def __init__(self, child: Child, returncode: int) -> None:
        super().__init__(f"{child.name} (pid {child.pid}) exited with {describe_returncode(returncode)}")
        self.child = child
        self.returncode = returncode


def describe_returncode(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. If the supervisor is killed outright (SIGKILL, OOM),
    # the children get SIGTERM instead of running on as orphans that hold the port.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    def __init__(self, *, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.children: list[Child] = []
        self._poll_interval_s = poll_interval_s
        self._stop_signal: int | None = None

    def install_signal_handlers(self) -> None:
        # Handlers only record the request; the loop acts on it between polls, so a signal never
        # lands in the middle of starting or stopping a child.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        # A process group of its own: Ctrl+C in the terminal reaches only the supervisor, which
        # then stops the children in order instead of having them race it to exit.
        process = subprocess.Popen(list(argv), env=dict(env), process_group=0, preexec_fn=_die_with_parent)
        child = Child(name=name, process=process)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise StopRequested if a stop signal arrived, else ChildDied if a child has exited."""
        if self._stop_signal is not None:
            raise StopRequested(self._stop_signal)
        for child in self.children:
            returncode = child.process.poll()
            if returncode is not None:
                raise ChildDied(child, returncode)

    def wait_until(
        self,
        is_ready: Callable[[], bool],
        *,
        patience_s: float,
        on_slow: Callable[[], None],
    ) -> None:
        """Poll ``is_ready`` until it holds, watching the children and signals in between.

        There is no deadline: a worker waiting for its broker is still starting, and the operator
        decides when to give up. ``on_slow`` is called once after ``patience_s`` to say what is
        being waited for.
        """
        slow_at = time.monotonic() + patience_s
        told = False
        while True:
            self.check()
            if is_ready():
                return
            self.check()
            if not told and time.monotonic() >= slow_at:
                on_slow()
                told = True
            time.sleep(self._poll_interval_s)

    def run_until_stopped(self) -> None:
        """Block until a signal arrives (StopRequested) or a child exits (ChildDied)."""
        while True:
            self.check()
            time.sleep(self._poll_interval_s)

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask every running child to stop, then kill whatever is left after ``timeout_s``."""
        running = [child for child in self.children if child.process.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.process.terminate()
        deadline = time.monotonic() + timeout_s
        for child in running:
            remaining = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=remaining)
        for child in self.children:
            # The whole group: a child that would not stop may also have left workers of its own.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.process.wait()
