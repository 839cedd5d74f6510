"""What is running, as the workers report it.

A worker that runs a route publishes its state here about once a second with a short expiry, so a
route whose worker died reads as ``idle`` within seconds instead of looking alive forever. The API,
the UI and readiness all read this one place. The store is Redis when REDIS_URL is set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import caches

STATE_TTL_S = 5
IDLE = "idle"
RUNNING = "running"
FAILED = "failed"


@dataclass
class RouteRuntime:
    state: str = IDLE
    reason: str = ""
    node: str | None = None
    listeners_bound: bool = False
    active_input: int | None = None  # None on the slate, too
    active_priority: int | None = None
    on_slate: bool = False
    switches: int = 0
    last_switch: dict[str, Any] | None = None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_at: float | None = None

    @property
    def taken_up(self) -> bool:
        """Running on a worker with every listener bound: what readiness waits for."""
        return self.state == RUNNING and self.listeners_bound

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteRuntime:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def _store():  # noqa: ANN202 - Django's cache handle has no public type
    return caches["runtime"]


def _key(route_id: int) -> str:
    return f"route:{route_id}:state"


def publish_route_state(route_id: int, runtime: RouteRuntime, ttl_s: int = STATE_TTL_S) -> None:
    runtime.updated_at = time.time()
    _store().set(_key(route_id), asdict(runtime), timeout=ttl_s)


def clear_route_state(route_id: int) -> None:
    _store().delete(_key(route_id))


def route_state(route_id: int) -> RouteRuntime:
    return route_states([route_id])[route_id]


def route_states(route_ids: list[int]) -> dict[int, RouteRuntime]:
    found = _store().get_many([_key(route_id) for route_id in route_ids])
    return {
        route_id: RouteRuntime.from_dict(found[_key(route_id)]) if _key(route_id) in found else RouteRuntime()
        for route_id in route_ids
    }
