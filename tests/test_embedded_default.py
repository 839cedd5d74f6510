"""``manage.py serve`` with nothing configured: what an operator gets from a fresh install.

No DATABASE_URL, broker or Redis: the gateway must run on its SQLite file and folder broker, with a
working login, styled admin and a live worker, and must stop cleanly as a whole.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    PYTHON,
    REPO_ROOT,
    RunningProcess,
    descendants,
    environment,
    fetch,
    free_port,
    start_manage,
    stop_process_tree,
    wait_for_output,
    wait_for_pids_gone,
)

SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "ALLOWED_HOSTS", "VAJRACAST_STATIC_ROOT")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def embedded_env(data_dir: Path) -> dict[str, str]:
    return environment(remove=SERVICE_VARIABLES, VAJRACAST_DATA_DIR=str(data_dir))


@pytest.fixture
def gateway(embedded_env: dict[str, str]) -> Iterator[tuple[RunningProcess, str]]:
    port = free_port()
    process = start_manage("serve", "--host", "127.0.0.1", "--port", str(port), env=embedded_env)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop_process_tree(process)


def _csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, f"no CSRF field in the login page:\n{html[:2000]}"
    return found.group(1)


def _stylesheet(html: str) -> str:
    found = re.search(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', html) or re.search(
        r'<link[^>]+href="([^"]+\.css)"', html
    )
    assert found, f"no stylesheet linked from the admin page:\n{html[:2000]}"
    return found.group(1)


def test_serve_runs_the_whole_gateway_on_the_embedded_default(
    gateway: tuple[RunningProcess, str], data_dir: Path, embedded_env: dict[str, str]
) -> None:
    process, base = gateway

    wait_for_output(process, r"^Press Ctrl\+C to stop\.$", timeout_s=240)
    output = process.output()
    assert f"Open:      {base}/" in output
    password = re.search(r"^  Password:  (\S+)", output, re.MULTILINE)
    assert password, output
    assert (data_dir / "initial-admin-password").read_text().strip() == password.group(1)
    assert (data_dir / "initial-admin-password").stat().st_mode & 0o777 == 0o600
    assert f"{base}/api/docs/" in output
    web_pid = int(re.search(r"gunicorn \(pid (\d+)\)", output).group(1))
    worker_pid = int(re.search(r"celery \(pid (\d+)\)", output).group(1))

    health = fetch(f"{base}/api/health")
    assert health.status == 200, health.text
    ready = fetch(f"{base}/api/ready")
    assert ready.status == 200, ready.text
    assert ready.json()["status"] == "ok"

    # The embedded default really is in the data dir, not in a server somewhere.
    assert (data_dir / "vajracast.sqlite3").is_file()
    assert (data_dir / "broker" / "queue").is_dir()

    # Log in as a person would: the form's CSRF token and cookie, then the routes page.
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_page = fetch(f"{base}/login/", opener=browser)
    assert login_page.status == 200
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password.group(1), "csrfmiddlewaretoken": _csrf_token(login_page.text)}
    ).encode()
    after_login = fetch(f"{base}/login/", opener=browser, data=form, headers={"Referer": f"{base}/login/"})
    assert after_login.status == 200, after_login.text[:2000]
    assert urllib.parse.urlsplit(after_login.url).path == "/", after_login.url
    assert "Routes" in after_login.text

    # The admin is styled without DEBUG: its stylesheet is served.
    admin_login = fetch(f"{base}/admin/login/")
    assert admin_login.status == 200
    css = fetch(urllib.parse.urljoin(f"{base}/admin/login/", _stylesheet(admin_login.text)))
    assert css.status == 200
    assert css.headers.get_content_type() == "text/css"
    assert b"{" in css.body

    # The worker consumes from the folder broker: a control ping through it gets its answer.
    ping = subprocess.run(
        [PYTHON, "-m", "celery", "-A", "vajracast", "inspect", "ping", "--timeout", "10"],
        cwd=REPO_ROOT,
        env=embedded_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ping.returncode == 0, f"{ping.stdout}\n{ping.stderr}"
    assert "pong" in ping.stdout
    assert "vajracast@" in ping.stdout

    # SIGTERM to the launcher stops everything it started, and it exits cleanly.
    started = {web_pid, worker_pid, *descendants(process.pid)}
    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(timeout=90) == 0, process.tail()
    assert wait_for_pids_gone(sorted(started), timeout_s=30) == []
    assert "Stopped." in process.output()


def test_serve_stops_everything_when_a_part_dies_and_keeps_the_admin_on_restart(
    gateway: tuple[RunningProcess, str], data_dir: Path, embedded_env: dict[str, str]
) -> None:
    process, _base = gateway
    wait_for_output(process, r"^Press Ctrl\+C to stop\.$", timeout_s=240)
    web_pid = int(re.search(r"gunicorn \(pid (\d+)\)", process.output()).group(1))
    worker_pid = int(re.search(r"celery \(pid (\d+)\)", process.output()).group(1))
    started = {web_pid, worker_pid, *descendants(process.pid)}

    # A worker killed from outside (OOM killer, an operator's kill -9) takes the gateway down
    # visibly instead of leaving a web UI whose routes never start.
    os.kill(worker_pid, signal.SIGKILL)

    assert process.popen.wait(timeout=90) != 0
    wait_for_output(process, r"worker \(celery\).*exited with signal SIGKILL", timeout_s=10)
    assert wait_for_pids_gone(sorted(started), timeout_s=30) == []

    # Started again on the same data: same admin, no new password, and a pointer to the first one.
    port = free_port()
    again = start_manage("serve", "--host", "127.0.0.1", "--port", str(port), env=embedded_env)
    try:
        wait_for_output(again, r"^Press Ctrl\+C to stop\.$", timeout_s=240)
        assert "Created the administrator" not in again.output()
        assert f"Password:  the first one is in {data_dir / 'initial-admin-password'}" in again.output()
        again.popen.send_signal(signal.SIGTERM)
        assert again.popen.wait(timeout=90) == 0, again.tail()
    finally:
        stop_process_tree(again)
