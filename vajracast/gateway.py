"""What ``manage.py serve`` runs on a single machine, and how it tells that each part is up.

Kept apart from the supervision itself (``vajracast.launcher``) so the command only wires the
two together.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from vajracast.celery import app

WEB_WORKERS = 2
WEB_THREADS = 4
WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def browse_url(host: str, port: int) -> str:
    """The address to give the operator: a wildcard bind is reached through the machine's name."""
    shown = socket.gethostname() if host in WILDCARD_HOSTS else host
    return f"http://{_url_host(shown)}:{port}/"


def probe_url(host: str, port: int, path: str) -> str:
    """An address on this machine that reaches the server whatever it is bound to."""
    local = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{_url_host(local)}:{port}{path}"


def web_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "vajracast.embedded_wsgi:application",
        "--bind",
        f"{_url_host(host)}:{port}",
        "--workers",
        str(WEB_WORKERS),
        "--threads",
        str(WEB_THREADS),
        "--access-logfile",
        "-",
        # Its default control socket is one fixed path per user: a second gateway on the machine
        # would take it over. Nothing here uses it.
        "--no-control-socket",
        # Leaves room for the supervisor's own stop timeout to be the one that matters.
        "--graceful-timeout",
        "10",
        # Hooks that keep /metrics right across the workers (see vajracast.gunicorn_conf).
        "--config",
        "python:vajracast.gunicorn_conf",
    ]


def web_environment(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """The web server's environment: its processes share request metrics through files in the
    data dir unless PROMETHEUS_MULTIPROC_DIR says where. The worker serves no metrics and keeps
    none on disk."""
    return {"PROMETHEUS_MULTIPROC_DIR": str(data_dir / "prometheus"), **env}


def worker_node_name() -> str:
    return f"vajracast@{socket.gethostname()}"


def worker_command(data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "vajracast",
        "worker",
        "-B",
        "--loglevel",
        "INFO",
        "-n",
        worker_node_name(),
        # Beat keeps its schedule state in a file; by default that lands in the current directory.
        "--schedule",
        str(data_dir / "celerybeat-schedule"),
    ]


def web_answers(url: str) -> bool:
    """True once the server sends any HTTP response: a 503 from /api/health still means it is up."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a fixed http:// URL on this machine
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def worker_answers(node_name: str) -> bool:
    try:
        replies = app.control.ping(destination=[node_name], timeout=1.0)
    except Exception:  # noqa: BLE001 - a broker that is not there yet just means "not up yet"
        return False
    return any(node_name in reply for reply in replies)
