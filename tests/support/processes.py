"""Helpers for tests that run the gateway's real processes: servers, workers, management commands.

Every process started here is meant to be stopped by the test that started it, with
``stop_process_tree`` in a ``finally`` or a fixture, so nothing outlives the test run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPMessage
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MANAGE_PY = REPO_ROOT / "manage.py"
PYTHON = sys.executable


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (also usable as a "closed" port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(*, remove: Sequence[str] = (), **values: str) -> dict[str, str]:
    """This process's environment with some variables removed and others set."""
    env = {name: value for name, value in os.environ.items() if name not in remove}
    env.update(values)
    return env


@dataclass
class RunningProcess:
    """A started process whose combined stdout and stderr are collected as it runs."""

    name: str
    popen: subprocess.Popen[str]
    _chunks: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def tail(self, chars: int = 6000) -> str:
        return self.output()[-chars:]

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._lock:
                self._chunks.append(line)

    def fail_if_exited(self, waiting_for: str) -> None:
        code = self.popen.poll()
        if code is not None:
            time.sleep(0.2)  # let the reader catch the last lines
            raise AssertionError(
                f"{self.name} exited with {code} while waiting for {waiting_for}; output:\n{self.tail()}"
            )


def start_process(
    argv: Sequence[str], *, env: Mapping[str, str], name: str | None = None, cwd: Path = REPO_ROOT
) -> RunningProcess:
    popen = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    process = RunningProcess(name=name or " ".join(argv[:4]), popen=popen)
    threading.Thread(target=process._collect, name=f"output of {process.pid}", daemon=True).start()
    return process


def start_manage(*args: str, env: Mapping[str, str]) -> RunningProcess:
    return start_process([PYTHON, str(MANAGE_PY), *args], env=env, name=f"manage.py {' '.join(args)}")


def run_manage(*args: str, env: Mapping[str, str], timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a management command to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        [PYTHON, str(MANAGE_PY), *args],
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def wait_for_output(process: RunningProcess, pattern: str, timeout_s: float = 180) -> re.Match[str]:
    """Wait until the process has printed something matching ``pattern`` (a regex)."""
    regex = re.compile(pattern, re.MULTILINE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = regex.search(process.output())
        if found:
            return found
        process.fail_if_exited(f"output matching {pattern!r}")
        time.sleep(0.2)
    raise AssertionError(f"{process.name} printed nothing matching {pattern!r} in {timeout_s}s:\n{process.tail()}")


@dataclass
class Response:
    status: int
    headers: HTTPMessage
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    url: str,
    *,
    opener: urllib.request.OpenerDirector | None = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30,
) -> Response:
    """One HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))  # noqa: S310 - tests use http://
    open_url = (opener or urllib.request.build_opener()).open
    try:
        with open_url(request, timeout=timeout_s) as response:
            return Response(response.status, response.headers, response.read(), response.geturl())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read(), error.geturl())


def wait_for_url(url: str, process: RunningProcess, timeout_s: float = 120) -> Response:
    """Wait until ``url`` gives any HTTP answer, failing early if the serving process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.fail_if_exited(url)
        try:
            return fetch(url, timeout_s=5)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout_s}s; {process.name} printed:\n{process.tail()}")


def pid_running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    # The state follows the command name, which is in parentheses and may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``: children, grandchildren and so on."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return found


def wait_for_pids_gone(pids: Sequence[int], timeout_s: float = 60) -> list[int]:
    """Wait for the processes to end; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [pid for pid in pids if pid_running(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def stop_pid(pid: int, timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout_s``."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if not wait_for_pids_gone([pid], timeout_s):
            return


def stop_process_tree(process: RunningProcess, timeout_s: float = 30) -> None:
    """Stop a started process and anything it left running (terminate, then kill)."""
    below = descendants(process.pid)
    if process.popen.poll() is None:
        process.popen.terminate()
        try:
            process.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(timeout=timeout_s)
    for pid in below:
        if pid_running(pid):
            stop_pid(pid, timeout_s)
