"""The live pages in a real browser: what an operator watching them sees change, without a reload."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

from routes.choices import EventKind, Role
from routes.models import Input, Output, Route, RouteEvent
from routes.runtime import RouteRuntime, publish_route_history, publish_route_state
from tests.browser.conftest import needs_chromium
from tests.orchestration.cluster import Cluster, events, wait_for
from tests.orchestration.test_failover import MAIN_TSID, SWITCH_SEEN_S, main_on_air_backup_standing_by

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

MARKER = "loaded-once"


def mark_loaded(page: Page) -> list[str]:
    """Leave a mark in the page's JavaScript world, which a reload would wipe, and count the
    navigations from here on."""
    page.evaluate(f"window.testMarker = {MARKER!r}")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    return navigations


def assert_not_reloaded(page: Page, navigations: list[str]) -> None:
    assert page.evaluate("window.testMarker") == MARKER, "the page was reloaded"
    assert navigations == [], navigations


def chart_points(page: Page, chart: str) -> int:
    return int(page.get_attribute(f"svg[data-chart={chart}]", "data-points") or 0)


# Published state, no worker: quick, and exact about what is shown


def published(route: Route, active: Input, inputs: list[Input], *, rtt: float = 12.5) -> RouteRuntime:
    runtime = RouteRuntime(
        state="running",
        node="alpha",
        listeners_bound=True,
        active_input=active.pk,
        active_priority=active.priority,
        inputs={
            str(i.pk): {
                "state": "connected",
                "reason": "",
                "healthy": True,
                "health_reason": "",
                "stats": {
                    "bitrate_1s_bps": 2_400_000.0 if i == active else 1_800_000.0,
                    "srt": {"rtt_ms": rtt, "packets_lost_recv": 3, "packets_retransmitted_recv": 7},
                },
            }
            for i in inputs
        },
    )
    publish_route_state(route.pk, runtime, ttl_s=120)
    return runtime


def test_a_viewer_sees_the_pages_follow_the_published_state_and_has_no_buttons(
    browser_page: Page, sign_in: Callable[[Page, Role], None], live_server: Any, screenshot: Callable[..., Path]
) -> None:
    route = Route.objects.create(name="news", enabled=True)
    main = Input.objects.create(route=route, name="main", priority=1, protocol="srt", mode="listener", port=9001)
    backup = Input.objects.create(route=route, name="backup", priority=2, protocol="srt", mode="listener", port=9002)
    Output.objects.create(route=route, name="cdn", protocol="srt", mode="caller", host="cdn.example.net", port=7000)
    published(route, main, [main, backup])
    now = time.time()
    # Two minutes in which the main input dropped out for twenty seconds.
    samples = [
        {"t": now - 120 + second, "active": backup.pk if 60 <= second < 80 else main.pk, "inputs": {
            str(main.pk): {"bps": 0.0 if 60 <= second < 80 else 2_000_000 + 5_000 * (second % 20),
                           "rtt": 10 + second % 7},
            str(backup.pk): {"bps": 1_500_000.0, "rtt": 30.0}}}
        for second in range(120)
    ]  # fmt: skip
    publish_route_history(route.pk, samples)
    page = browser_page
    sign_in(page, Role.VIEWER)

    row = page.locator(f'tr[data-route="{route.pk}"]')
    expect(row).to_contain_text("main (priority 1)")
    expect(row).to_contain_text("2.40 Mb/s")
    navigations = mark_loaded(page)
    published(route, backup, [main, backup])
    expect(row).to_contain_text("backup (priority 2)", timeout=10_000)
    assert_not_reloaded(page, navigations)
    assert page.locator("main button").count() == 0, "a viewer gets no buttons"

    page.goto(f"{live_server.url}/routes/{route.pk}/")
    expect(page.locator("[data-on-air]")).to_have_text("backup")
    expect(page.locator("[data-live-status]")).to_contain_text("live", timeout=10_000)
    # The history from before the page was opened is drawn at once.
    wait_for(lambda: chart_points(page, "bitrate") >= 2 * len(samples), 10, "the charts drawn from the history")
    assert chart_points(page, "rtt") >= 2 * len(samples)
    navigations = mark_loaded(page)
    published(route, main, [main, backup], rtt=42.0)
    expect(page.locator("[data-on-air]")).to_have_text("main", timeout=10_000)
    expect(page.locator(f'tr[data-input="{main.pk}"]')).to_have_class(re.compile(r"\bonair\b"))
    expect(page.locator(f'tr[data-input="{main.pk}"] [data-srt]')).to_have_text(
        "RTT 42.0 ms · lost 3 · retransmitted 7"
    )
    expect(page.locator(f'tr[data-input="{backup.pk}"]')).not_to_have_class(re.compile(r"\bonair\b"))
    RouteEvent.objects.create(route=route, kind=EventKind.SWITCHED, message='switched from "backup" to "main"')
    expect(page.locator("tr[data-kind=switched]")).to_contain_text('switched from "backup" to "main"', timeout=10_000)
    assert_not_reloaded(page, navigations)
    assert page.locator("main button").count() == 0, "a viewer gets no buttons"
    screenshot(page, "route-detail-viewer")


def test_an_operator_gets_the_buttons_and_they_survive_the_updates(
    browser_page: Page, sign_in: Callable[[Page, Role], None], live_server: Any
) -> None:
    route = Route.objects.create(name="news", enabled=True)
    main = Input.objects.create(route=route, name="main", priority=1, protocol="srt", mode="listener", port=9001)
    backup = Input.objects.create(route=route, name="backup", priority=2, protocol="srt", mode="listener", port=9002)
    published(route, main, [main, backup])
    page = browser_page
    sign_in(page, Role.OPERATOR)
    page.goto(f"{live_server.url}/routes/{route.pk}/")
    button = page.locator(f'tr[data-input="{backup.pk}"] button')
    expect(button).to_have_text("Switch to")
    page.evaluate(
        f"window.testButton = document.querySelector('tr[data-input=\"{backup.pk}\"] button')"
    )  # fmt: skip
    published(route, main, [main, backup], rtt=99.0)
    expect(page.locator(f'tr[data-input="{main.pk}"] [data-srt]')).to_contain_text("RTT 99.0 ms", timeout=10_000)
    # Patched in place, not replaced: a click that starts before an update still lands.
    assert page.evaluate(f"window.testButton === document.querySelector('tr[data-input=\"{backup.pk}\"] button')")

    button.click()
    expect(page.locator(".messages")).to_contain_text('switching to "backup"')
    route.refresh_from_db()
    assert route.pinned_input_id == backup.pk
    expect(page.locator("main button", has_text="Release")).to_be_visible()


# A real worker and live encoders: the failover as an operator watches it


def test_the_detail_page_shows_the_backup_on_air_after_a_failover_without_a_reload(
    cluster: Cluster,
    operator_api: APIClient,
    browser_page: Page,
    sign_in: Callable[[Page, Role], None],
    live_server: Any,
    screenshot: Callable[..., Path],
) -> None:
    page = browser_page
    with main_on_air_backup_standing_by(cluster, operator_api) as setup:
        main, backup = setup.main, setup.backup
        sign_in(page, Role.OPERATOR)
        page.goto(f"{live_server.url}/routes/{setup.route.pk}/")
        navigations = mark_loaded(page)

        expect(page.locator("[data-on-air]")).to_have_text("main")
        expect(page.locator(f'tr[data-input="{main.pk}"]')).to_have_class(re.compile(r"\bonair\b"))
        expect(page.locator(f'tr[data-input="{main.pk}"] [data-health]')).to_contain_text("healthy")
        expect(page.locator(f'tr[data-input="{backup.pk}"] [data-health]')).to_contain_text("healthy")
        expect(page.locator(f'tr[data-input="{main.pk}"] [data-srt]')).to_contain_text("RTT")
        expect(page.locator(f'tr[data-input="{backup.pk}"] button')).to_have_text("Switch to")
        # A few seconds of samples, so the failover lands inside drawn lines.
        wait_for(lambda: chart_points(page, "bitrate") >= 6, 20, "points in the bitrate chart")
        points_before = chart_points(page, "bitrate")
        screenshot(page, "route-detail-main-on-air")

        killed_at = time.monotonic()
        os.kill(setup.encoders[MAIN_TSID].pid, signal.SIGKILL)
        setup.encoders[MAIN_TSID].popen.wait(timeout=10)

        expect(page.locator("[data-on-air]")).to_have_text("backup", timeout=SWITCH_SEEN_S * 1000)
        print(f"the page shows the backup on air {time.monotonic() - killed_at:.2f}s after the main encoder was killed")
        expect(page.locator(f'tr[data-input="{backup.pk}"]')).to_have_class(re.compile(r"\bonair\b"))
        expect(page.locator(f'tr[data-input="{main.pk}"]')).not_to_have_class(re.compile(r"\bonair\b"))
        expect(page.locator(f'tr[data-input="{main.pk}"] [data-health]')).to_contain_text("no data for")
        expect(page.locator("[data-switches]")).to_have_text("1")
        expect(page.locator("tr[data-kind=switched]")).to_contain_text(
            'switched from "main" to "backup"', timeout=10_000
        )
        assert setup.status()["active_input"] == backup.pk, "the page and the API agree"
        wait_for(lambda: chart_points(page, "bitrate") > points_before + 2, 10, "the chart going on after the switch")
        assert chart_points(page, "rtt") > 0
        assert_not_reloaded(page, navigations)
        assert [event.kind for event in events(setup.route, EventKind.SWITCHED)] == [EventKind.SWITCHED]
        screenshot(page, "route-detail-after-failover")

        page.goto(f"{live_server.url}/")
        row = page.locator(f'tr[data-route="{setup.route.pk}"]')
        expect(row).to_contain_text("backup (priority 2)")
        expect(row).to_contain_text("running")
        expect(row).to_contain_text(re.compile(r"\d+ kb/s|Mb/s"))
        screenshot(page, "route-list-live")
