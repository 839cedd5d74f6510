"""The failover settings (a route's slate, an input's bitrate floor) and the failover state in a route's
status: accepted, refused with a message per field, and shown as the worker publishes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.api.serializers import RouteStatusSerializer, StatusInputSerializer
from routes.choices import Role
from routes.models import Input, Route
from routes.runtime import RouteRuntime, publish_route_state

SLATE_CHOICES = "Not a valid choice; use one of: none, pattern."
FLOOR_TOO_LOW = "A bitrate floor is at least 1 kb/s; leave it empty for none."


@pytest.fixture
def operator_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.OPERATOR)


@pytest.fixture
def inputs(make_input: Callable[..., Input]) -> tuple[Input, Input]:
    return make_input(name="main", port=9001), make_input(name="backup", port=9002)


# slate


def test_a_new_route_has_no_slate(admin_api: APIClient) -> None:
    created = admin_api.post("/api/v1/routes/", {"name": "sport"}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["slate"] == "none"


@pytest.mark.parametrize("slate", ["none", "pattern"])
def test_slate_takes_none_or_pattern(admin_api: APIClient, slate: str) -> None:
    created = admin_api.post("/api/v1/routes/", {"name": "sport", "slate": slate}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["slate"] == slate
    assert Route.objects.get(name="sport").slate == slate


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("file", f"slate: {SLATE_CHOICES}", id="unknown"),
        pytest.param("Pattern", f"slate: {SLATE_CHOICES}", id="wrong-case"),
        pytest.param("", f"slate: {SLATE_CHOICES}", id="empty"),
        pytest.param(None, "slate: This field may not be null.", id="null"),
        pytest.param(["pattern"], f"slate: {SLATE_CHOICES}", id="list"),
        pytest.param(1, f"slate: {SLATE_CHOICES}", id="number"),
    ],
)
def test_slate_refuses_anything_else_naming_the_choices(
    admin_api: APIClient, route: Route, value: object, message: str
) -> None:
    response = admin_api.patch(f"/api/v1/routes/{route.pk}/", {"slate": value}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["message"] == message
    assert list(response.json()["errors"]) == ["slate"]
    route.refresh_from_db()
    assert route.slate == "none"


def test_changing_the_slate_is_a_change_the_running_pipeline_picks_up(admin_api: APIClient, route: Route) -> None:
    before = route.config_version

    response = admin_api.patch(f"/api/v1/routes/{route.pk}/", {"slate": "pattern"}, format="json")

    assert response.status_code == 200, response.content
    route.refresh_from_db()
    assert (route.slate, route.config_version) == ("pattern", before + 1)


# bitrate floor


def test_an_input_has_no_bitrate_floor_unless_given(admin_api: APIClient, route: Route) -> None:
    created = admin_api.post(
        "/api/v1/inputs/", {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001}, format="json"
    )

    assert created.status_code == 201, created.content
    assert created.json()["min_bitrate_kbps"] is None


@pytest.mark.parametrize(("value", "stored"), [(1, 1), (2500, 2500), (1_000_000, 1_000_000), (None, None)])
def test_bitrate_floor_takes_a_positive_rate_or_empty(
    admin_api: APIClient, make_input: Callable[..., Input], value: int | None, stored: int | None
) -> None:
    source = make_input(port=9001, min_bitrate_kbps=500)

    response = admin_api.patch(f"/api/v1/inputs/{source.pk}/", {"min_bitrate_kbps": value}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["min_bitrate_kbps"] == stored
    source.refresh_from_db()
    assert source.min_bitrate_kbps == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(0, f"min_bitrate_kbps: {FLOOR_TOO_LOW}", id="zero"),
        pytest.param(-5, f"min_bitrate_kbps: {FLOOR_TOO_LOW}", id="negative"),
        pytest.param(1_000_001, "min_bitrate_kbps: A bitrate floor is at most 1000000 kb/s (1 Gb/s).", id="huge"),
        pytest.param(10**30, "min_bitrate_kbps: A bitrate floor is at most 1000000 kb/s (1 Gb/s).", id="enormous"),
        pytest.param("fast", "min_bitrate_kbps: A valid integer is required.", id="word"),
        pytest.param(1.5, "min_bitrate_kbps: A valid integer is required.", id="fraction"),
    ],
)
def test_bitrate_floor_refuses_zero_and_nonsense_with_a_message(
    admin_api: APIClient, make_input: Callable[..., Input], value: object, message: str
) -> None:
    source = make_input(port=9001)

    response = admin_api.patch(f"/api/v1/inputs/{source.pk}/", {"min_bitrate_kbps": value}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["message"] == message
    source.refresh_from_db()
    assert source.min_bitrate_kbps is None


def test_a_new_input_with_a_zero_floor_is_not_created(admin_api: APIClient, route: Route) -> None:
    body = {"route": route.pk, "name": "cam", "protocol": "srt", "port": 9001, "min_bitrate_kbps": 0}

    response = admin_api.post("/api/v1/inputs/", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"min_bitrate_kbps": [FLOOR_TOO_LOW]}
    assert not Input.objects.exists()


# the switch request: what tests/api/test_switch_and_status.py does not already refuse


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"input": True}, "input: A valid integer is required.", id="boolean"),
        pytest.param({"input": 1.5}, "input: A valid integer is required.", id="fraction"),
        pytest.param({"input": [1]}, "input: A valid integer is required.", id="list"),
        pytest.param({"input": {"id": 1}}, "input: A valid integer is required.", id="object"),
        pytest.param({"input": ""}, "input: A valid integer is required.", id="empty-text"),
        pytest.param([{"input": None}], "Invalid data. Expected a dictionary, but got list.", id="list-body"),
    ],
)
def test_switch_refuses_a_malformed_body_with_a_message(
    operator_api: APIClient, route: Route, inputs: tuple[Input, Input], body: Any, message: str
) -> None:
    route.pin_input(inputs[1].pk)

    response = operator_api.post(f"/api/v1/routes/{route.pk}/switch/", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["message"] == message
    route.refresh_from_db()
    assert route.pinned_input_id == inputs[1].pk, "a refused request changes nothing"


def test_switch_message_names_the_route_and_the_id(
    operator_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    response = operator_api.post(f"/api/v1/routes/{route.pk}/switch/", {"input": 424242}, format="json")

    assert response.status_code == 400
    assert response.json()["message"] == 'input: Route "news" has no input with id 424242.'


def test_switching_an_unknown_route_is_404(operator_api: APIClient) -> None:
    response = operator_api.post("/api/v1/routes/424242/switch/", {"input": None}, format="json")

    assert response.status_code == 404
    assert "No Route matches" in response.json()["message"]


# the failover state in the status


def test_status_has_the_failover_keys_before_any_worker_reports(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    body = admin_api.get(f"/api/v1/routes/{route.pk}/status/").json()

    assert {key: body[key] for key in ("active_input", "active_priority", "on_slate", "switches", "last_switch")} == {
        "active_input": None,
        "active_priority": None,
        "on_slate": False,
        "switches": 0,
        "last_switch": None,
    }
    assert [(i["name"], i["healthy"], i["health_reason"]) for i in body["inputs"]] == [
        ("main", False, ""),
        ("backup", False, ""),
    ]


def _publish(route: Route, **state: Any) -> None:
    publish_route_state(route.pk, RouteRuntime(state="running", node="node-1", listeners_bound=True, **state))


def test_status_shows_the_switch_the_worker_reported(
    api_client_for: Callable[[Role | None], APIClient], route: Route, inputs: tuple[Input, Input]
) -> None:
    main, backup = inputs
    reason = '"main" down: no data for 312 ms (timeout 300 ms)'
    _publish(
        route,
        active_input=backup.pk,
        active_priority=2,
        switches=3,
        # The engine names inputs by string ids; the API by the numbers it uses everywhere else.
        last_switch={"from": str(main.pk), "to": str(backup.pk), "reason": reason, "planned": False, "at": 1.5e9},
        inputs={
            str(main.pk): {"state": "connected", "healthy": False, "health_reason": "no data for 312 ms"},
            str(backup.pk): {"state": "connected", "healthy": True, "health_reason": ""},
        },
    )

    body = api_client_for(Role.VIEWER).get(f"/api/v1/routes/{route.pk}/status/").json()

    assert (body["active_input"], body["active_priority"], body["on_slate"], body["switches"]) == (
        backup.pk,
        2,
        False,
        3,
    )
    assert body["last_switch"] == {"from": main.pk, "to": backup.pk, "reason": reason, "planned": False, "at": 1.5e9}
    assert [(i["name"], i["active"], i["healthy"], i["health_reason"]) for i in body["inputs"]] == [
        ("main", False, False, "no data for 312 ms"),
        ("backup", True, True, ""),
    ]


def test_status_on_the_slate_has_no_active_input(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    main, _backup = inputs
    _publish(
        route,
        active_input=None,
        active_priority=3,
        on_slate=True,
        switches=1,
        last_switch={"from": str(main.pk), "to": "slate", "reason": "every input down", "planned": False, "at": 1.0},
    )

    body = admin_api.get(f"/api/v1/routes/{route.pk}/status/").json()

    assert (body["active_input"], body["active_priority"], body["on_slate"]) == (None, 3, True)
    assert (body["last_switch"]["from"], body["last_switch"]["to"]) == (main.pk, "slate")
    assert not any(i["active"] for i in body["inputs"])


def test_status_serves_exactly_what_the_schema_documents(
    admin_api: APIClient, route: Route, inputs: tuple[Input, Input]
) -> None:
    _publish(route, active_input=inputs[0].pk, active_priority=1)

    body = admin_api.get(f"/api/v1/routes/{route.pk}/status/").json()

    assert set(body) == set(RouteStatusSerializer().fields)
    for item in body["inputs"]:
        assert set(item) == set(StatusInputSerializer().fields)
