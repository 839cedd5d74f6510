"""A route's live status: its configuration joined with what its worker reports.

The API's ``status/`` action and the UI both render this, so they can never disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from routes.models import Route
from routes.runtime import IDLE, RouteRuntime, route_states


def _endpoint_status(endpoint: Any, reported: dict[str, dict[str, Any]]) -> dict[str, Any]:
    mine = reported.get(str(endpoint.pk), {})
    return {
        "id": endpoint.pk,
        "name": endpoint.name,
        "protocol": endpoint.protocol,
        "state": mine.get("state", IDLE),
        "reason": mine.get("reason", ""),
        "stats": mine.get("stats", {}),
    }


def _output_status(output: Any, reported: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A transcoding output's encoder and figures get their own key; its stats keep the rest."""
    status = _endpoint_status(output, reported)
    stats = dict(status["stats"])
    return {**status, "stats": stats, "transcode": stats.pop("transcode", None)}


def _last_switch(reported: dict[str, Any] | None) -> dict[str, Any] | None:
    """The engine names inputs by string ids; the API by the database's numbers, as in events and
    ``active_input``. The slate keeps its name."""
    if reported is None:
        return None
    ids = {key: int(value) for key in ("from", "to") if isinstance(value := reported.get(key), str) and value.isdigit()}
    return {**reported, **ids}


def route_status(route: Route, runtime: RouteRuntime) -> dict[str, Any]:
    inputs = [
        {
            **_endpoint_status(i, runtime.inputs),
            "priority": i.priority,
            "active": i.pk == runtime.active_input,
            "healthy": runtime.inputs.get(str(i.pk), {}).get("healthy", False),
            "health_reason": runtime.inputs.get(str(i.pk), {}).get("health_reason", ""),
        }
        for i in route.inputs.all()
    ]
    outputs = [_output_status(o, runtime.outputs) for o in route.outputs.all()]
    updated = datetime.fromtimestamp(runtime.updated_at, UTC).isoformat() if runtime.updated_at else None
    return {
        "route": route.pk,
        "enabled": route.enabled,
        "state": runtime.state,
        "reason": runtime.reason or route.placement_problem,
        "node": runtime.node,
        "active_input": runtime.active_input,
        "active_priority": runtime.active_priority,
        "on_slate": runtime.on_slate,
        "pinned_input": route.pinned_input_id,
        "switches": runtime.switches,
        "last_switch": _last_switch(runtime.last_switch),
        "inputs": inputs,
        "outputs": outputs,
        "updated_at": updated,
    }


def statuses(routes: list[Route]) -> dict[int, dict[str, Any]]:
    runtimes = route_states([route.pk for route in routes])
    return {route.pk: route_status(route, runtimes[route.pk]) for route in routes}
