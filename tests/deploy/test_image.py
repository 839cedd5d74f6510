"""The built image, run as a deployment runs it: a web and a worker container against real PostgreSQL
and Redis, a route made through the API, and a live SRT stream relayed through the worker.

Skipped unless VAJRACAST_TEST_IMAGE names the image (bin/test-image builds it and sets it): the rest
of the suite needs no container engine. The containers share this machine's network, so the
database and Redis in DATABASE_URL and REDIS_URL are reached at the same addresses as from here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import av
import psycopg
import pytest
import redis

from tests.peers.media import ffmpeg_live_encoder, ffmpeg_srt_url, free_udp_port, probe, slt_to_file, slt_url
from tests.support.processes import RunningProcess, fetch, free_port, stop_process_tree

IMAGE = os.environ.get("VAJRACAST_TEST_IMAGE", "")
UID = "10001"
# bin/test-image removes containers with this label that a killed run left behind.
LABEL = "vajracast.test-image=1"

pytestmark = [
    pytest.mark.skipif(not IMAGE, reason="VAJRACAST_TEST_IMAGE is not set (bin/test-image sets it)"),
    pytest.mark.timeout(600),
]


def podman(*args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@dataclass
class Deployment:
    """Containers started by one test, by name, and what they need: a fresh database and two
    Redis databases of their own."""

    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    names: list[str] = field(default_factory=list)
    database_url: str = ""
    redis_urls: tuple[str, str] = ("", "")

    @property
    def database(self) -> str:
        return f"vajracast_image_{self.tag}"

    def prepare(self) -> None:
        server = os.environ["DATABASE_URL"]
        with psycopg.connect(with_path(server, "/postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
        self.database_url = with_path(server, f"/{self.database}")
        base = os.environ["REDIS_URL"]
        # Databases the rest of the suite leaves alone (it uses 14 and 15), emptied before and after.
        self.redis_urls = (with_path(base, "/12"), with_path(base, "/13"))
        self.flush_redis()

    def flush_redis(self) -> None:
        for url in self.redis_urls:
            if url:
                with redis.Redis.from_url(url) as client:
                    client.flushdb()

    def env_args(self, **extra: str) -> list[str]:
        values = {
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.redis_urls[0],
            "REDIS_URL": self.redis_urls[1],
            "SECRET_KEY": secrets.token_urlsafe(40),
            "VAJRACAST_PUBLIC_HOST": "127.0.0.1",
            **extra,
        }
        return [argument for name, value in values.items() for argument in ("--env", f"{name}={value}")]

    def run(self, role: str, **env: str) -> str:
        name = f"vajracast-test-{role}-{self.tag}"
        self.names.append(name)
        podman(
            "run", "--detach", "--name", name, "--label", LABEL, "--network", "host", "--hostname", name,
            *self.env_args(**env), IMAGE, role,
        )  # fmt: skip
        return name

    def fail_if_exited(self, waiting_for: str) -> None:
        for name in self.names:
            state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, check=False)
            if state.returncode == 0 and not state.stdout.startswith("running"):
                raise AssertionError(
                    f"{name} stopped ({state.stdout.strip()}) while waiting for {waiting_for}\n{self.logs()}"
                )

    def run_once(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-off container, e.g. the migrate role, removed when it ends."""
        return podman("run", "--rm", "--label", LABEL, "--network", "host", *self.env_args(), IMAGE, *args)

    def logs(self, tail: str = "60") -> str:
        shown = []
        for name in self.names:
            result = podman("logs", *(["--tail", tail] if tail else []), name, check=False)
            shown.append(f"----- {name} -----\n{result.stdout}{result.stderr}")
        return "\n".join(shown)

    def keep_logs(self) -> None:
        """The containers' logs, in the artifacts folder CI keeps (bin/test sets it)."""
        folder = os.environ.get("VAJRACAST_ARTIFACTS_DIR")
        if folder and self.names:
            Path(folder).mkdir(parents=True, exist_ok=True)
            kept = Path(folder) / f"image-test-{self.tag}.log"
            kept.write_text(self.logs(tail=""), encoding="utf-8")
            print(f"container logs: {kept}")

    def remove(self) -> None:
        for name in reversed(self.names):
            podman("rm", "--force", "--time", "20", name, check=False, timeout_s=60)
        self.flush_redis()
        if self.database_url:
            with psycopg.connect(with_path(os.environ["DATABASE_URL"], "/postgres"), autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, deployment: Deployment) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        deployment.fail_if_exited(what)
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{deployment.logs()}")


def answers(url: str, status: int = 200) -> bool:
    try:
        return fetch(url, timeout_s=5).status == status
    except OSError:
        return False


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    assert shutil.which("podman"), "podman is not installed"
    running = Deployment()
    running.prepare()
    try:
        yield running
    finally:
        running.keep_logs()
        running.remove()


def test_web_and_worker_containers_relay_a_live_srt_stream(deployment: Deployment, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ingest, play = free_udp_port(), free_udp_port()

    started = time.monotonic()
    web = deployment.run("web", PORT=str(port))
    took = wait_for(lambda: answers(f"{base}/api/health"), 180, "the web container's /api/health", deployment)
    print(f"web: /api/health 200 after {took:.1f}s (migrations included)")
    worker = deployment.run(
        "worker",
        VAJRACAST_NODE_NAME=f"image-{deployment.tag}",
        VAJRACAST_PORT_MIN=str(min(ingest, play)),
        VAJRACAST_PORT_MAX=str(max(ingest, play)),
    )
    took = wait_for(lambda: answers(f"{base}/api/ready"), 120, "/api/ready", deployment)
    print(f"ready {time.monotonic() - started:.1f}s after the web container started")

    # Processes run as the image's user, not root.
    for name in (web, worker):
        assert podman("exec", name, "id", "-u").stdout.strip() == UID
        assert podman("exec", name, "stat", "-c", "%u", "/proc/1").stdout.strip() == UID

    # Static files collected at build time are served by the web role itself.
    css = fetch(f"{base}/static/admin/css/base.css")
    assert css.status == 200, css.text[:300]
    assert css.headers["Content-Type"].startswith("text/css")
    assert b"body" in css.body

    # The image's health check passes in both roles.
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE).stdout)
    assert config["Test"][-1] == "/usr/local/bin/vajracast-healthcheck", config
    for name in (web, worker):
        said = podman("exec", name, *config["Test"][1:], check=False)
        assert podman("healthcheck", "run", name, check=False).returncode == 0, f"{name}: {said.stdout}{said.stderr}"
        print(f"health check in {name}: {said.stdout.strip()}")

    key = podman("exec", web, "python", "manage.py", "create_api_key", "--user", "ci", "--role", "admin").stdout
    headers = {"Authorization": f"Bearer {key.strip()}", "Content-Type": "application/json"}

    def api(path: str, body: dict | None = None, expect: int = 200) -> dict:
        data = None if body is None else json.dumps(body).encode()
        response = fetch(f"{base}/api/v1/{path}", data=data, headers=headers)
        assert response.status == expect, f"{path}: {response.status} {response.text[:500]}"
        return response.json()

    route = api("routes/", {"name": "image-test"}, expect=201)
    common = {"route": route["id"], "protocol": "srt", "mode": "listener"}
    api("inputs/", {**common, "name": "cam", "port": ingest}, expect=201)
    api("outputs/", {**common, "name": "play", "port": play}, expect=201)
    api(f"routes/{route['id']}/start/", {})

    def bound() -> bool:
        status = api(f"routes/{route['id']}/status/")
        listening = ("listening", "connected")
        return (
            status["state"] == "running"
            and status["inputs"][0]["state"] in listening
            and status["outputs"][0]["state"] in listening
        )

    took = wait_for(bound, 60, "the route to run with its listeners bound", deployment)
    print(f"route running with listeners bound {took:.1f}s after the start request")
    assert answers(f"{base}/api/ready"), fetch(f"{base}/api/ready").text

    received = tmp_path / "received.ts"
    peers: list[RunningProcess] = []
    try:
        peers.append(slt_to_file(slt_url("127.0.0.1", play), received))
        peers.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", ingest), tsid=1, tone_hz=1000))
        took = wait_for(
            lambda: received.exists() and received.stat().st_size > 400_000, 60, "media at the receiver", deployment
        )
        print(f"400 kB relayed {took:.1f}s after the encoder started")
    finally:
        for process in reversed(peers):
            stop_process_tree(process)

    assert {stream["codec_type"] for stream in probe(received)["streams"]} == {"video", "audio"}
    with av.open(str(received)) as container:
        pictures = sum(1 for _ in container.decode(video=0))
    assert pictures >= 50, f"only {pictures} pictures decoded from {received.stat().st_size} bytes"
    print(f"received {received.stat().st_size} bytes, {pictures} pictures decoded")

    # The other two roles: migrate applies what is missing and exits; beat keeps its schedule in
    # the data dir and sends the reconcile task.
    migrated = deployment.run_once("migrate")
    assert "No migrations to apply" in migrated.stdout, migrated.stdout
    beat = deployment.run("beat")

    def beat_said() -> str:
        result = podman("logs", beat, check=False)
        return result.stdout + result.stderr

    # Its banner names the schedule file, in the data dir.
    wait_for(lambda: "db -> /var/lib/vajracast/celerybeat-schedule" in beat_said(), 60, "beat to start", deployment)
    time.sleep(3)
    deployment.fail_if_exited("beat to keep running")
