"""Operator actions (start, stop, switch) and the live status a worker publishes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from routes.choices import Role
from routes.models import Input, Output, Route
from routes.runtime import RouteRuntime, clear_route_state, publish_route_state


@pytest.fixture
def operator_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.OPERATOR)


@pytest.fixture
def inputs(make_input: Callable[..., Input]) -> tuple[Input, Input]:
    return make_input(name="main", port=9001), make_input(name="backup", port=9002)


@pytest.mark.parametrize(("action", "before", "after"), [("start", False, True), ("stop", True, False)])
def test_start_and_stop_set_the_desired_state(
    operator_api: APIClient, route: Route, action: str, before: bool, after: bool
) -> None:
    route.set_enabled(before)

    response = operator_api.post(f"/api/v1/routes/{route.pk}/{action}/")

    assert response.status_code == 200
    assert response.json()["enabled"] is after
    route.refresh_from_db()
    assert route.enabled is after


def test_switch_pins_an_input_and_null_releases_it(
    operator_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    _main, backup = inputs
    switch = f"/api/v1/routes/{route.pk}/switch/"

    pinned = operator_api.post(switch, {"input": backup.pk}, format="json")

    assert pinned.status_code == 200
    assert pinned.json()["pinned_input"] == backup.pk
    route.refresh_from_db()
    assert route.pinned_input_id == backup.pk

    released = operator_api.post(switch, {"input": None}, format="json")

    assert released.status_code == 200
    assert released.json()["pinned_input"] is None
    route.refresh_from_db()
    assert route.pinned_input_id is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(lambda foreign: {"input": foreign}, 'Route "news" has no input with id', id="other-routes-input"),
        pytest.param(lambda foreign: {"input": 999999}, 'Route "news" has no input with id 999999', id="unknown-id"),
        pytest.param(lambda foreign: {"input": "main"}, "A valid integer is required", id="not-a-number"),
        pytest.param(lambda foreign: {}, "This field is required", id="missing"),
    ],
)
def test_switch_refuses_what_is_not_an_input_of_the_route(
    operator_api: APIClient,
    route: Route,
    inputs: tuple[Input, Input],
    make_input: Callable[..., Input],
    body: Callable[[int], dict[str, object]],
    fragment: str,
) -> None:
    foreign = make_input(route=Route.objects.create(name="sport"), port=9003)

    response = operator_api.post(f"/api/v1/routes/{route.pk}/switch/", body(foreign.pk), format="json")

    assert response.status_code == 400
    assert fragment in response.json()["errors"]["input"][0]
    route.refresh_from_db()
    assert route.pinned_input_id is None


def test_status_is_idle_when_no_worker_reports(
    api_client_for: Callable[[Role | None], APIClient],
    route: Route,
    inputs: tuple[Input, Input],
    make_output: Callable[..., Output],
) -> None:
    out = make_output(name="out")

    body = api_client_for(Role.VIEWER).get(f"/api/v1/routes/{route.pk}/status/").json()

    assert body["state"] == "idle"
    assert body["active_input"] is None
    assert body["node"] is None
    assert body["updated_at"] is None
    assert [(i["name"], i["state"], i["active"]) for i in body["inputs"]] == [
        ("main", "idle", False),
        ("backup", "idle", False),
    ]
    assert [(o["id"], o["state"], o["stats"]) for o in body["outputs"]] == [(out.pk, "idle", {})]


def _publish_backup_active(route: Route, backup: Input, main: Input, out: Output, ttl_s: int = 5) -> None:
    publish_route_state(
        route.pk,
        RouteRuntime(
            state="running",
            node="node-1",
            listeners_bound=True,
            active_input=backup.pk,
            inputs={
                str(main.pk): {"state": "down", "reason": "no data for 300 ms", "stats": {"bitrate_kbps": 0}},
                str(backup.pk): {"state": "up", "stats": {"bitrate_kbps": 4500, "rtt_ms": 12.5}},
            },
            outputs={str(out.pk): {"state": "up", "stats": {"bytes_sent": 123456}}},
        ),
        ttl_s=ttl_s,
    )


def test_status_shows_what_the_worker_published(
    api_client_for: Callable[[Role | None], APIClient],
    route: Route,
    inputs: tuple[Input, Input],
    make_output: Callable[..., Output],
) -> None:
    main, backup = inputs
    out = make_output(name="out")
    _publish_backup_active(route, backup, main, out)

    body = api_client_for(Role.VIEWER).get(f"/api/v1/routes/{route.pk}/status/").json()

    assert (body["state"], body["node"], body["active_input"]) == ("running", "node-1", backup.pk)
    assert body["updated_at"] is not None
    by_name = {i["name"]: i for i in body["inputs"]}
    assert by_name["main"]["state"] == "down"
    assert by_name["main"]["reason"] == "no data for 300 ms"
    assert by_name["main"]["active"] is False
    assert by_name["backup"]["state"] == "up"
    assert by_name["backup"]["active"] is True
    assert by_name["backup"]["stats"] == {"bitrate_kbps": 4500, "rtt_ms": 12.5}
    assert body["outputs"][0]["stats"] == {"bytes_sent": 123456}


def test_status_of_one_route_is_not_another_routes(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input], make_output: Callable[..., Output]
) -> None:
    main, backup = inputs
    _publish_backup_active(route, backup, main, make_output(name="out"))
    sport = Route.objects.create(name="sport")

    assert admin_api.get(f"/api/v1/routes/{sport.pk}/status/").json()["state"] == "idle"


def test_status_is_idle_again_once_the_worker_clears_its_state(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input], make_output: Callable[..., Output]
) -> None:
    main, backup = inputs
    _publish_backup_active(route, backup, main, make_output(name="out"))
    status = f"/api/v1/routes/{route.pk}/status/"
    assert admin_api.get(status).json()["state"] == "running"

    clear_route_state(route.pk)

    body = admin_api.get(status).json()
    assert (body["state"], body["active_input"]) == ("idle", None)
    assert {i["state"] for i in body["inputs"]} == {"idle"}


def test_status_is_idle_again_when_the_worker_stops_reporting(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input], make_output: Callable[..., Output]
) -> None:
    main, backup = inputs
    _publish_backup_active(route, backup, main, make_output(name="out"), ttl_s=1)
    status = f"/api/v1/routes/{route.pk}/status/"
    assert admin_api.get(status).json()["state"] == "running"

    time.sleep(1.5)

    assert admin_api.get(status).json()["state"] == "idle"


def test_actions_answer_with_the_live_status(
    operator_api: APIClient, route: Route, inputs: tuple[Input, Input], make_output: Callable[..., Output]
) -> None:
    main, backup = inputs
    _publish_backup_active(route, backup, main, make_output(name="out"))

    body = operator_api.post(f"/api/v1/routes/{route.pk}/switch/", {"input": main.pk}, format="json").json()

    assert (body["state"], body["active_input"], body["pinned_input"]) == ("running", backup.pk, main.pk)


def test_moving_the_pinned_input_to_another_route_releases_the_pin(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    main, _backup = inputs
    route.pin_input(main.pk)
    sport = Route.objects.create(name="sport")

    moved = admin_api.patch(f"/api/v1/inputs/{main.pk}/", {"route": sport.pk, "port": 9101}, format="json")

    assert moved.status_code == 200, moved.content
    assert admin_api.get(f"/api/v1/routes/{route.pk}/status/").json()["pinned_input"] is None
