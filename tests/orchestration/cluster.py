"""A small gateway cluster for one test: a private Redis, workers, beat, and SRT peers that reconnect.

The peers behave like a real encoder and a real player whose route moves between workers: when the
connection breaks they try again, so a test can tell when media flows again by watching bytes arrive.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.db import connection
from rest_framework.test import APIClient

from routes.choices import InputProtocol, OutputProtocol
from routes.models import Input, Output, Route, RouteEvent, RouteLease
from routes.runtime import route_state
from tests.peers.media import ffmpeg_srt_url
from tests.support.processes import RunningProcess, environment, start_process, stop_process_tree
from tests.support.workers import PrivateRedis, Worker, start_beat, start_worker, wait_online

LEASE_TTL = timedelta(seconds=5)  # RunnerTiming.lease_ttl_s


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.05) -> float:
    """Poll until ``condition()`` is true; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def udp_port_free(port: int) -> bool:
    """Whether a plain UDP socket (no address reuse) can bind the port: nobody holds it any more."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Player:
    """A player of a route's SRT output; everything it receives, over every reconnection, is
    appended to one file."""

    target: Path
    process: RunningProcess

    def received(self) -> int:
        try:
            return self.target.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_for_media(self, timeout_s: float, what: str, since: int | None = None, min_bytes: int = 50_000) -> float:
        """Wait until ``min_bytes`` (about half a second of the test stream, more than a latency
        window in flight) arrive beyond ``since`` bytes (default: what arrived so far)."""
        before = self.received() if since is None else since
        return wait_for(lambda: self.received() >= before + min_bytes, timeout_s, f"{what} ({self.process.name})")


def keep_sending(source: Path, port: int, *, listen: bool = False) -> RunningProcess:
    """ffmpeg sending ``source`` in a loop in real time, started again whenever its link breaks.

    It calls the route's listener input, or with ``listen`` waits for the route to call it.
    """
    url = ffmpeg_srt_url("127.0.0.1", port, **({"mode": "listener"} if listen else {}))
    ffmpeg = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(source)]
    ffmpeg += ["-c", "copy", "-f", "mpegts", url]
    return start_process(
        ["sh", "-c", f"while :; do {shlex.join(ffmpeg)}; sleep 0.3; done"],
        env=environment(),
        name=f"encoder {'on' if listen else 'to'} :{port}",
    )


def keep_playing(port: int, target: Path, *, listen: bool = False) -> Player:
    """srt-live-transmit appending the route's output to ``target``, started again whenever its
    link breaks. It calls the route's listener output, or with ``listen`` waits for the route."""
    source = f"srt://127.0.0.1:{port}" + ("?mode=listener" if listen else "")
    slt = ["srt-live-transmit", "-q", source, "file://con"]
    process = start_process(
        ["sh", "-c", f"while :; do {shlex.join(slt)}; sleep 0.3; done > {shlex.quote(str(target))}"],
        env=environment(),
        name=f"player {'on' if listen else 'from'} :{port}",
    )
    return Player(target, process)


@dataclass
class Cluster:
    tmp: Path
    redis: PrivateRedis
    database_url: str
    processes: list[RunningProcess] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    # Settings for every process started from now on, e.g. a shorter webhook backoff.
    settings_env: dict[str, str] = field(default_factory=dict)

    def env(self, **values: str) -> dict[str, str]:
        return environment(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.redis.url(0),
            REDIS_URL=self.redis.url(1),
            VAJRACAST_DATA_DIR=str(self.tmp / "data"),
            **{**self.settings_env, **values},
        )

    def worker(self, node: str) -> Worker:
        """Start a worker and wait until its node is online."""
        worker = start_worker(node, self.env())
        self.workers.append(worker)
        took = wait_online(worker)
        print(f"worker {node} (pid {worker.pid}) online after {took:.1f}s")
        return worker

    def beat(self) -> RunningProcess:
        beat = start_beat(self.env(), self.tmp / "celerybeat-schedule")
        self.processes.append(beat)
        return beat

    def encoder(self, source: Path, port: int, *, listen: bool = False) -> RunningProcess:
        process = keep_sending(source, port, listen=listen)
        self.processes.append(process)
        return process

    def player(self, port: int, name: str = "player", *, listen: bool = False) -> Player:
        player = keep_playing(port, self.tmp / f"{name}.ts", listen=listen)
        self.processes.append(player.process)
        return player

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for process in self.processes:
            stop_process_tree(process)
        # Shown by pytest when the test failed: what each process said.
        for process in [worker.process for worker in self.workers] + self.processes:
            print(f"----- {process.name} (pid {process.pid}) -----\n{process.tail(20_000)}")


BOUND = ("listening", "connected")  # a listener endpoint with its port bound


class Operator:
    """One route as an operator drives it: through the API with an operator key."""

    def __init__(self, api: APIClient, route: Route) -> None:
        self.api = api
        self.route = route
        self.base = f"/api/v1/routes/{route.pk}"

    def post(self, action: str) -> dict:
        response = self.api.post(f"{self.base}/{action}/")
        assert response.status_code == 200, response.content
        return response.json()

    def status(self) -> dict:
        response = self.api.get(f"{self.base}/status/")
        assert response.status_code == 200, response.content
        return response.json()

    def running_with_listeners_bound(self) -> bool:
        now = self.status()
        return now["state"] == "running" and now["inputs"][0]["state"] in BOUND and now["outputs"][0]["state"] in BOUND

    def start(self, *, listeners: bool = True) -> float:
        """Start the route; seconds until the status shows it running (with its listeners bound)."""
        self.post("start")
        if listeners:
            return wait_for(self.running_with_listeners_bound, 30, "the route to run with its listeners bound")
        return wait_for(lambda: self.status()["state"] == "running", 30, "the route to run")

    def stop(self) -> dict[str, float]:
        """Stop the route; seconds until the lease is released and the status leaves running."""
        self.post("stop")
        return {
            "lease released": wait_for(
                lambda: not RouteLease.held().filter(route=self.route).exists(), 30, "the lease release"
            ),
            "status left running": wait_for(lambda: self.status()["state"] != "running", 30, "the status"),
        }


def srt_route(name: str, input_port: int, output_port: int, mode: str = "listener") -> Route:
    """A route from an SRT input to an SRT output on loopback: listeners on the given ports, or
    callers dialling peers that listen there."""
    route = Route.objects.create(name=name)
    for model, fields in (
        (Input, {"priority": 1, "protocol": InputProtocol.SRT, "port": input_port}),
        (Output, {"protocol": OutputProtocol.SRT, "port": output_port}),
    ):
        endpoint = model(route=route, name=f"{name}-{model.__name__.lower()}", mode=mode, host="127.0.0.1")
        for attribute, value in fields.items():
            setattr(endpoint, attribute, value)
        endpoint.full_clean()
        endpoint.save()
    return route


def events(route: Route, kind: str) -> list[RouteEvent]:
    return list(RouteEvent.objects.filter(route=route, kind=kind).order_by("id"))


@dataclass(frozen=True)
class Sample:
    at: datetime
    owner: str | None
    token: int | None
    expires_at: datetime | None
    state: str
    node: str | None
    updated_at: float | None

    @property
    def live_owner(self) -> str | None:
        return self.owner if self.expires_at is not None and self.expires_at > self.at else None


class LeaseWatch:
    """Samples a route's lease and its published state every 0.1 s in a thread, for checks afterwards."""

    def __init__(self, route_id: int, every_s: float = 0.1) -> None:
        self.route_id = route_id
        self.every_s = every_s
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease watch", daemon=True)

    def __enter__(self) -> LeaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _sample(self) -> Sample:
        from django.utils import timezone

        at = timezone.now()
        lease = RouteLease.objects.filter(route_id=self.route_id).values_list("owner", "token", "expires_at").first()
        try:
            runtime = route_state(self.route_id)
            state, node, updated = runtime.state, runtime.node, runtime.updated_at
        except Exception as exc:  # noqa: BLE001 - the store may be restarting; the lease still counts
            state, node, updated = f"unreadable: {exc}", None, None
        owner, token, expires = lease if lease else (None, None, None)
        return Sample(at, owner, token, expires, state, node, updated)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    self.samples.append(self._sample())
                except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
                    self.errors.append(repr(exc))
        finally:
            connection.close()

    def owners(self) -> list[str]:
        seen: list[str] = []
        for sample in self.samples:
            if sample.owner and (not seen or seen[-1] != sample.owner):
                seen.append(sample.owner)
        return seen

    def assert_one_pipeline_at_a_time(self) -> None:
        """The lease changed hands only after it expired, and its fencing token only grew."""
        assert not self.errors, self.errors
        assert len(self.samples) > 10, "the watch took almost no samples"
        previous: Sample | None = None
        for sample in self.samples:
            if previous is not None and previous.token is not None:
                assert sample.token is not None, f"the lease row vanished at {sample.at}"
                assert sample.token >= previous.token, f"token went back: {previous} -> {sample}"
                if sample.owner != previous.owner:
                    assert sample.token > previous.token, f"new owner with the same token: {previous} -> {sample}"
                    assert sample.expires_at is not None
                    assert previous.expires_at is not None
                    taken_at = sample.expires_at - LEASE_TTL
                    assert taken_at > previous.expires_at, (
                        f"{sample.owner} took the lease at {taken_at:%H:%M:%S.%f} while {previous.owner} "
                        f"held it until {previous.expires_at:%H:%M:%S.%f}"
                    )
            previous = sample

    def assert_state_follows_lease(self) -> None:
        """Whenever the published state is fresh and says running, the lease holder's node published it."""
        for sample in self.samples:
            fresh = sample.updated_at is not None and sample.at.timestamp() - sample.updated_at < 1.5
            if sample.state == "running" and fresh and sample.live_owner:
                assert sample.node == node_of(sample.live_owner), sample


def node_of(owner: str) -> str:
    """The node in a lease owner ("node:pid:nonce", see RouteRunner)."""
    return owner.split(":", 1)[0]
