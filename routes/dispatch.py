"""Bringing what runs in line with what should run.

``reconcile`` runs every couple of seconds (Celery beat) and when a worker starts; ``dispatch`` runs
at once when an operator starts a route. Both only send a route's pipeline task to its node's queue
when nobody holds the route's lease; the lease, not the broker, guarantees one copy per route.
"""

from __future__ import annotations

import logging

from django.core.cache import caches

from routes.models import Route, RouteLease
from routes.placement import place
from routes.runtime import FAILED, RouteRuntime, route_states

log = logging.getLogger(__name__)

# A dispatched task holds the lease within a few seconds; until then, don't send it again.
DISPATCH_GRACE_S = 10


def _dispatch_key(route_id: int) -> str:
    return f"route:{route_id}:dispatched"


def _claim_dispatch(route_id: int) -> bool:
    return bool(caches["runtime"].add(_dispatch_key(route_id), 1, timeout=DISPATCH_GRACE_S))


def dispatch_settled(route_id: int) -> None:
    """The sent task took the lease, or ended: the route may be sent again whenever needed."""
    try:
        caches["runtime"].delete(_dispatch_key(route_id))
    except Exception as exc:  # noqa: BLE001 - the marker only saves a duplicate message
        log.debug("could not clear the dispatch marker of route %s: %s", route_id, exc)


def dispatch(route: Route, *, force: bool = False) -> str | None:
    """Send the route's pipeline to its node. Returns the node's name, or None with the reason saved."""
    from routes.tasks import run_route

    if RouteLease.held().filter(route_id=route.pk).exists():
        return route.node.name if route.node else None
    placement = place(route)
    if placement.node is None:
        problem = _fit(placement.problem)
        if route.placement_problem != problem:
            Route.objects.filter(pk=route.pk).update(placement_problem=problem)
        return None
    Route.objects.filter(pk=route.pk).update(node=placement.node, placement_problem="")
    if not force and not _claim_dispatch(route.pk):
        return placement.node.name
    # The node's own queue, not a shared one per capability (a "gpu" queue): placement already
    # chose a node that has the encoders, and the route's listener ports and the address its
    # encoders dial belong to that node, so any other worker taking the message would be wrong.
    run_route.apply_async(args=[route.pk], queue=placement.node.queue)
    log.info('route "%s": pipeline sent to node "%s"', route.name, placement.node.name)
    return placement.node.name


def _fit(problem: str) -> str:
    limit = Route._meta.get_field("placement_problem").max_length or len(problem)
    return problem if len(problem) <= limit else problem[: limit - 1] + "…"


def reconcile() -> int:
    """Dispatch every enabled route that nobody runs; returns how many were sent."""
    held = set(RouteLease.held().values_list("route_id", flat=True))
    waiting = list(Route.objects.filter(enabled=True).exclude(pk__in=held).select_related("node", "pinned_node"))
    if not waiting:
        return 0
    try:
        states = route_states([route.pk for route in waiting])
    except Exception as exc:  # noqa: BLE001 - without the runtime store, failures are not remembered
        log.warning("runtime store unavailable (%s); dispatching without failure back-off", exc)
        states = {route.pk: RouteRuntime() for route in waiting}
    sent = 0
    for route in waiting:
        if states[route.pk].state == FAILED:
            continue  # retried once its failure report expires
        if dispatch(route):
            sent += 1
    return sent
