"""The gateway's Celery processes (workers, beat) and a private Redis, for tests that run them for real.

A test points its workers at its own Redis (broker and runtime store) so it can stop and restart
that server, and so concurrent test runs on one machine never consume each other's messages.
Every process started here is stopped by its PID by the test that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tests.support.processes import (
    PYTHON,
    RunningProcess,
    free_port,
    pid_running,
    start_process,
    stop_process_tree,
    wait_for_output,
)

WORKER_START_TIMEOUT_S = 120  # a cold Django + Celery start on a busy 2-core CI machine


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL for another process to reach the database Django uses here (the test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    options = urlencode({key: str(value) for key, value in (settings_dict.get("OPTIONS") or {}).items()})
    query = f"?{options}" if options else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}{query}"


@dataclass
class PrivateRedis:
    """A throw-away redis-server on a loopback port, without persistence: a restart loses everything."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: RunningProcess | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            raise AssertionError("these tests start their own Redis: install the redis-server package")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.workdir)]
        self.process = start_process(argv, env=os.environ, name=f"redis-server :{self.port}")
        wait_for_output(self.process, r"Ready to accept connections", timeout_s=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_tree(self.process)
            self.process = None


@dataclass
class Worker:
    """One ``celery worker`` process serving one node."""

    node: str
    process: RunningProcess
    started_at: float  # wall clock, comparable with the node's heartbeat

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.popen.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """kill -9: no drain, no lease release; the process is reaped before this returns."""
        self.signal(signal.SIGKILL)
        self.process.popen.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> None:
        """Stop it whatever its state; a paused process is woken first so it can take the SIGTERM."""
        if pid_running(self.pid):
            with suppress(ProcessLookupError):
                self.signal(signal.SIGCONT)
        stop_process_tree(self.process, timeout_s=timeout_s)


def worker_command(node: str) -> list[str]:
    return [PYTHON, "-m", "celery", "-A", "vajracast", "worker", "-n", f"{node}@%h", "--loglevel", "INFO"]


def beat_command(schedule: Path) -> list[str]:
    return [PYTHON, "-m", "celery", "-A", "vajracast", "beat", "--loglevel", "INFO", "--schedule", str(schedule)]


def start_worker(node: str, env: Mapping[str, str]) -> Worker:
    """Start a worker for ``node``; use ``wait_online`` before relying on it."""
    started_at = time.time()
    process = start_process(worker_command(node), env={**env, "VAJRACAST_NODE_NAME": node}, name=f"worker {node}")
    return Worker(node=node, process=process, started_at=started_at)


def start_beat(env: Mapping[str, str], schedule: Path) -> RunningProcess:
    return start_process(beat_command(schedule), env=env, name="celery beat")


def wait_online(worker: Worker, timeout_s: float = WORKER_START_TIMEOUT_S) -> float:
    """Wait until the worker has registered its node (after it consumes its queue); returns seconds taken.

    Only a heartbeat newer than this process's start counts: a node row left by an earlier process
    with the same name must not pass for this one.
    """
    from routes.models import Node

    since = datetime.fromtimestamp(worker.started_at, UTC)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        node = Node.objects.filter(name=worker.node, last_heartbeat__gte=since).first()
        if node is not None and node.alive:
            return time.time() - worker.started_at
        worker.process.fail_if_exited(f"node {worker.node} to come online")
        time.sleep(0.2)
    raise AssertionError(f"node {worker.node} not online after {timeout_s}s:\n{worker.process.tail()}")


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Send this process's tasks (the API's dispatch) to ``url`` for a while.

    Celery reads CELERY_BROKER_URL from the environment before its configuration, and keeps its
    broker connection pools once made: both are switched, and switched back on the way out.
    """
    from vajracast.celery import app

    def drop_pools() -> None:
        # Only forget them: the configured broker's pools live on in kombu's registry and are
        # picked up again, unclosed, when the URL is restored.
        app._pool = None
        app.amqp._producer_pool = None

    before_conf, before_env = app.conf.broker_url, os.environ.get("CELERY_BROKER_URL")
    drop_pools()
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url
    try:
        yield
    finally:
        private = app._pool
        drop_pools()
        app.conf.broker_url = before_conf
        if before_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = before_env
        if private is not None:
            with suppress(Exception):  # its server may be gone already
                private.force_close_all()
