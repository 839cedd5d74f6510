"""docker/healthcheck.py, the image's HEALTHCHECK, run here against a stand-in web server."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """Answers /api/health with ``status`` and remembers the Host headers it was sent."""

    def __init__(self) -> None:
        self.status = 200
        self.hosts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hosts.append(self.headers["Host"])
                self.send_response(outer.status if self.path == "/api/health" else 404)
                self.end_headers()
                self.wfile.write(b'{"status": "fail"}' if outer.status != 200 else b'{"status": "ok"}')

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        pytest.param("", "127.0.0.1", id="unset"),
        pytest.param("*", "127.0.0.1", id="any"),
        pytest.param("gw.example.net,localhost", "gw.example.net", id="first-name"),
        pytest.param(".example.net", "example.net", id="subdomains"),
    ],
)
def test_the_host_header_is_one_django_accepts(
    healthcheck: ModuleType, server: Server, monkeypatch: pytest.MonkeyPatch, allowed: str, host: str
) -> None:
    monkeypatch.setenv("PORT", str(server.port))
    monkeypatch.setenv("ALLOWED_HOSTS", allowed)
    assert healthcheck.check_web() == 0
    assert server.hosts == [host]


def test_unhealthy_on_503_and_when_nothing_answers(
    healthcheck: ModuleType, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", str(server.port))
    server.status = 503
    assert healthcheck.check_web() == 1
    server.httpd.server_close()
    monkeypatch.setenv("PORT", "1")
    assert healthcheck.check_web() == 1


def test_the_script_imports_nothing_but_the_standard_library() -> None:
    # Run in isolated mode so that nothing from the project or its virtualenv can be imported.
    code = "import runpy, sys; sys.argv = ['x']; runpy.run_path(sys.argv[1], run_name='probe')"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code.replace("sys.argv[1]", repr(str(SCRIPT)))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
