"""Headless Chromium driven by Playwright against the live test server.

The browser is Debian's ``chromium`` package: Playwright is told where it is and never downloads a
build of its own. Screenshots go to ``VAJRACAST_ARTIFACTS_DIR`` (default: a directory under
pytest's temporary path), and their paths are listed at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connections
from playwright.sync_api import Page, sync_playwright

from routes.choices import Role
from routes.roles import grant_role

# The orchestration fixtures run a real worker for the failover seen in the browser.
from tests.orchestration.conftest import cluster, operator_api, stream_ts  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
SCREENSHOTS: list[Path] = []

# CI installs the package (bin/lib.sh), so there these tests always run.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no {CHROMIUM}: install Debian's chromium package (bin/test does)"
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCREENSHOTS:
        terminalreporter.section("screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("VAJRACAST_ARTIFACTS_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def screenshot(artifacts_dir: Path) -> Callable[..., Path]:
    """Save a full-page screenshot of ``page`` as ``<name>.png`` and list it in the run's summary."""

    def take(page: Page, name: str) -> Path:
        path = artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        SCREENSHOTS.append(path)
        print(f"screenshot: {path}")
        return path

    return take


@pytest.fixture
def browser_page(transactional_db: None, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    """A fresh headless Chromium with one page in a wide window, for one test.

    Playwright's sync API keeps an event loop running in this thread for as long as it is open,
    and Django refuses database calls in a thread with a running loop. The test's own queries are
    plain blocking ones, so the guard is lifted while the browser is open; the browser is started
    after the database is set up and closed before it is flushed, so nothing else runs under it.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    messages: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
            yield page
        finally:
            browser.close()
            # Database connections opened while the browser's event loop ran are not the ones the
            # database fixtures close (Django keeps them per context): left open, they would block
            # dropping the test database at the end of the run.
            connections.close_all()
            if messages:
                print("browser console:\n" + "\n".join(messages))


@pytest.fixture
def sign_in(django_user_model: type[AbstractUser], live_server: Any) -> Callable[[Page, Role], None]:
    """Sign ``page`` in through the login form as a new user of ``role``."""

    def login(page: Page, role: Role) -> None:
        user = django_user_model.objects.create_user(username=f"{role.value}-browser", password=PASSWORD)
        grant_role(user, role)
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

    return login
