"""What is running, as the workers report it.

A worker that runs a route publishes its state here about once a second with a short expiry, so a
route whose worker died reads as ``idle`` within seconds instead of looking alive forever. The API,
the UI and readiness all read this one place. The store is Redis when REDIS_URL is set.

Next to it, the worker keeps a few minutes of per-input samples (bitrate, RTT) for the UI's charts,
so a page opened or reloaded mid-broadcast shows the recent past at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import caches

STATE_TTL_S = 5
HISTORY_WINDOW_S = 300
# Outlives the route's run a little, so the charts still explain a stop or a failure just after it.
HISTORY_TTL_S = 2 * HISTORY_WINDOW_S
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


def _history_key(route_id: int) -> str:
    return f"route:{route_id}:history"


def history_sample(runtime: RouteRuntime, at: float | None = None) -> dict[str, Any]:
    """One point of the charts: each input's bitrate over the last second and its SRT round trip.

    Inputs are keyed by their id as a string, as in ``RouteRuntime.inputs``; ``rtt`` is None for an
    input without an SRT link.
    """
    inputs: dict[str, dict[str, float | None]] = {}
    for input_id, reported in runtime.inputs.items():
        stats = reported.get("stats", {})
        srt = stats.get("srt") or {}
        inputs[input_id] = {"bps": stats.get("bitrate_1s_bps", 0.0), "rtt": srt.get("rtt_ms")}
    return {"t": round(time.time() if at is None else at, 3), "active": runtime.active_input, "inputs": inputs}


def trim_history(samples: list[dict[str, Any]], now: float, window_s: float = HISTORY_WINDOW_S) -> list[dict[str, Any]]:
    return [sample for sample in samples if now - sample["t"] <= window_s]


def publish_route_history(route_id: int, samples: list[dict[str, Any]]) -> None:
    """Store the whole window. One route has one writer (the lease holder), so the list is written
    as a value rather than appended to: the same code works on the file store of the embedded
    default, which has no list operations."""
    _store().set(_history_key(route_id), samples, timeout=HISTORY_TTL_S)


def route_history(route_id: int, since: float | None = None) -> list[dict[str, Any]]:
    samples = trim_history(_store().get(_history_key(route_id)) or [], time.time())
    return samples if since is None else [sample for sample in samples if sample["t"] > since]


def clear_route_history(route_id: int) -> None:
    _store().delete(_history_key(route_id))
