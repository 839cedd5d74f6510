"""Which node runs a route.

Routes stay where they are while that node lives: encoders send to a fixed address. A route that
needs a node goes to its pinned node, or else to the live node with the fewest routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from routes.models import Node, Route


@dataclass(frozen=True)
class Placement:
    node: Node | None
    problem: str = ""


def place(route: Route) -> Placement:
    alive = Node.alive_nodes().annotate(load=Count("routes", filter=Q(routes__enabled=True)))
    if route.pinned_node_id is not None:
        pinned = alive.filter(pk=route.pinned_node_id).first()
        if pinned is None:
            name = route.pinned_node.name if route.pinned_node else "?"
            return Placement(None, f'pinned to node "{name}", which is not online')
        return Placement(pinned)
    if route.node_id is not None:
        current = alive.filter(pk=route.node_id).first()
        if current is not None:
            return Placement(current)
    candidates = [node for node in alive.order_by("load", "name") if node.load < node.max_routes]
    if not candidates:
        if not alive.exists():
            return Placement(None, "no worker node is online")
        return Placement(None, "every online node already runs its maximum number of routes")
    return Placement(candidates[0])
