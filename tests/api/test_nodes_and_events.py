"""Nodes and the event log can be read (writes are refused: see test_permissions); events filter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from routes.choices import EventKind, NodeState, Role
from routes.models import Node, Route, RouteEvent


@pytest.fixture
def viewer_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.VIEWER)


@pytest.fixture
def events(route: Route) -> dict[str, RouteEvent]:
    sport = Route.objects.create(name="sport")
    now = timezone.now()
    return {
        "news-started": RouteEvent.objects.create(
            route=route, kind=EventKind.STARTED, time=now - timedelta(hours=2), message="started on node-1"
        ),
        "news-switched": RouteEvent.objects.create(
            route=route, kind=EventKind.SWITCHED, time=now - timedelta(minutes=5), data={"from": 1, "to": 2}
        ),
        "sport-started": RouteEvent.objects.create(route=sport, kind=EventKind.STARTED, time=now),
    }


def _names(body: dict, events: dict[str, RouteEvent]) -> list[str]:
    by_id = {event.pk: name for name, event in events.items()}
    return [by_id[item["id"]] for item in body["results"]]


def test_events_list_latest_first(viewer_api: APIClient, events: dict[str, RouteEvent]) -> None:
    body = viewer_api.get("/api/v1/events/").json()

    assert _names(body, events) == ["sport-started", "news-switched", "news-started"]
    assert body["results"][1]["data"] == {"from": 1, "to": 2}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(lambda e: {"route": e["news-started"].route_id}, ["news-switched", "news-started"], id="route"),
        pytest.param(lambda e: {"kind": "started"}, ["sport-started", "news-started"], id="kind"),
        pytest.param(
            lambda e: {"route": e["news-started"].route_id, "kind": "started"}, ["news-started"], id="route-and-kind"
        ),
        pytest.param(
            lambda e: {"since": (timezone.now() - timedelta(hours=1)).isoformat()},
            ["sport-started", "news-switched"],
            id="since",
        ),
        pytest.param(lambda e: {"kind": "error"}, [], id="kind-with-no-events"),
    ],
)
def test_events_filter(
    viewer_api: APIClient,
    events: dict[str, RouteEvent],
    query: Callable[[dict[str, RouteEvent]], dict[str, object]],
    expected: list[str],
) -> None:
    body = viewer_api.get("/api/v1/events/", query(events)).json()

    assert _names(body, events) == expected


def test_nodes_list_and_detail(viewer_api: APIClient, db: None) -> None:
    node = Node.objects.create(name="node-1", public_address="gw1.example.net", state=NodeState.ONLINE)
    Node.objects.create(name="node-2")

    listed = viewer_api.get("/api/v1/nodes/").json()
    detail = viewer_api.get(f"/api/v1/nodes/{node.pk}/").json()

    assert [n["name"] for n in listed["results"]] == ["node-1", "node-2"]
    assert (detail["public_address"], detail["state"]) == ("gw1.example.net", "online")
