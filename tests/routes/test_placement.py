"""Where routes run: live nodes only, pinned routes stay put, load spreads, and the reason is shown."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from routes.choices import NodeState
from routes.models import Node, Route
from routes.placement import place


def node(name: str, *, age_s: float = 0, max_routes: int = 64) -> Node:
    return Node.objects.create(
        name=name,
        state=NodeState.ONLINE,
        last_heartbeat=timezone.now() - timedelta(seconds=age_s),
        max_routes=max_routes,
    )


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    return client


def queued_route_ids(broker: redis.Redis, queue: str) -> list[int]:
    """The route ids of the pipeline messages waiting in a queue (Celery's JSON message body: args first)."""
    bodies = [json.loads(base64.b64decode(json.loads(raw)["body"])) for raw in broker.lrange(queue, 0, -1)]
    return [args[0] for args, _kwargs, _embed in bodies]


def test_no_live_node_is_explained_on_the_route(admin_api: APIClient, route: Route) -> None:
    node("gone", age_s=60)
    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()
    assert status["enabled"] is True
    assert status["reason"] == "no worker node is online"
    assert admin_api.get(f"/api/v1/routes/{route.pk}/").json()["placement_problem"] == "no worker node is online"


def test_start_sends_the_pipeline_to_the_nodes_own_queue(
    admin_api: APIClient, route: Route, broker: redis.Redis
) -> None:
    node("edge-1")
    admin_api.post(f"/api/v1/routes/{route.pk}/start/")
    route.refresh_from_db()
    assert route.node.name == "edge-1"
    assert route.placement_problem == ""
    assert queued_route_ids(broker, "node.edge-1") == [route.pk]


def test_a_pinned_route_waits_for_its_node(admin_api: APIClient, route: Route) -> None:
    node("edge-1")
    pinned = node("studio", age_s=60)
    response = admin_api.patch(f"/api/v1/routes/{route.pk}/", {"pinned_node": pinned.pk}, format="json")
    assert response.status_code == 200, response.json()
    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()
    assert status["reason"] == 'pinned to node "studio", which is not online'


def test_new_routes_go_to_the_least_loaded_live_node(db: None) -> None:
    busy, idle = node("busy"), node("idle")
    for index in range(3):
        Route.objects.create(name=f"r{index}", enabled=True, node=busy)
    assert place(Route.objects.create(name="new")).node == idle


def test_a_placed_route_stays_on_its_live_node(db: None) -> None:
    busy = node("busy")
    node("idle")
    for index in range(3):
        Route.objects.create(name=f"r{index}", enabled=True, node=busy)
    assert place(Route.objects.get(name="r0")).node == busy, "encoders send to a fixed address"


def test_full_nodes_take_no_more(db: None) -> None:
    full = node("full", max_routes=1)
    Route.objects.create(name="first", enabled=True, node=full)
    placement = place(Route.objects.create(name="second"))
    assert placement.node is None
    assert "maximum number of routes" in placement.problem
