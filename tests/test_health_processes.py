"""/api/health and /api/ready as an orchestrator sees them: real servers against real (or absent)
databases and brokers, probed over HTTP without credentials.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.support.processes import (
    PYTHON,
    RunningProcess,
    environment,
    fetch,
    free_port,
    run_manage,
    start_process,
    stop_process_tree,
    wait_for_url,
)
from vajracast.env import database_from_url

StartServer = Callable[..., str]


def _server_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in {"postgres", "postgresql"}:
        pytest.fail("These tests create databases: set DATABASE_URL to a Postgres server (bin/test does).")
    return url


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty Postgres database on the test server, dropped afterwards."""
    server_url = _server_database_url()
    config = database_from_url(server_url)
    name = f"vajracast_hp_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(
        host=config["HOST"] or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        # FORCE: a server under test may still hold a pooled connection to it.
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def server_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    def make(**values: str) -> dict[str, str]:
        return environment(VAJRACAST_DATA_DIR=str(tmp_path / "data"), **values)

    return make


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start gunicorn with the given environment; returns its base URL once it answers."""
    started: list[RunningProcess] = []

    def start(env: dict[str, str]) -> str:
        port = free_port()
        argv = [PYTHON, "-m", "gunicorn", "vajracast.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", "1", "--threads", "4", "--no-control-socket", "--timeout", "60"]
        process = start_process(argv, env=env, name=f"gunicorn on port {port}")
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for_url(f"{base}/api/health", process)
        return base

    yield start
    for process in started:
        stop_process_tree(process)


def test_health_fails_naming_the_database_when_nothing_listens(
    start_server: StartServer, server_env: Callable[..., dict[str, str]]
) -> None:
    closed_port = free_port()
    base = start_server(server_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port}/x"))

    health = fetch(f"{base}/api/health")

    assert health.status == 503
    body = health.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"] != "ok"
    assert str(closed_port) in body["checks"]["database"]


def test_ready_names_unapplied_migrations_until_migrate_runs(
    start_server: StartServer, server_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    env = server_env(DATABASE_URL=fresh_database)
    base = start_server(env)

    health = fetch(f"{base}/api/health")
    assert health.status == 200, health.text
    assert health.json() == {"status": "ok", "checks": {"database": "ok"}}
    not_ready = fetch(f"{base}/api/ready")
    assert not_ready.status == 503, not_ready.text
    checks = not_ready.json()["checks"]
    assert checks["database"] == "ok"
    assert "not applied" in checks["migrations"]
    assert "manage.py migrate" in checks["migrations"]

    run_manage("migrate", "--noinput", env=env)

    ready = fetch(f"{base}/api/ready")
    assert ready.status == 200, ready.text
    assert ready.json()["status"] == "ok"
    assert set(ready.json()["checks"].values()) == {"ok"}


def test_ready_fails_naming_the_broker_when_nothing_listens(
    start_server: StartServer, server_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    broker_port = free_port()
    env = server_env(DATABASE_URL=fresh_database, CELERY_BROKER_URL=f"redis://127.0.0.1:{broker_port}/0")
    base = start_server(env)

    ready = fetch(f"{base}/api/ready", timeout_s=60)

    assert ready.status == 503, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok"
    assert f"127.0.0.1:{broker_port}" in checks["broker"], checks["broker"]


def test_health_and_ready_need_no_credentials(
    start_server: StartServer, server_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    env = server_env(DATABASE_URL=fresh_database)
    run_manage("migrate", "--noinput", env=env)
    base = start_server(env)

    for path in ("/api/health", "/api/ready"):
        # No cookie, no key, and no redirect to a login page either.
        response = fetch(f"{base}{path}")
        assert response.status == 200, f"{path}: {response.status} {response.text}"
        assert urlsplit(response.url).path == path
        assert response.json()["status"] == "ok"
    # The API next to them does ask for credentials, so the two above are open on purpose.
    assert fetch(f"{base}/api/v1/routes/").status == 401
