"""Which node runs a route.

Routes stay where they are while that node lives: encoders send to a fixed address. A route that
needs a node goes to its pinned node, or else to the live node with the fewest routes. A route
whose outputs ask for a particular video encoder (VAAPI, QSV, NVENC, software) only goes to a node
that found that encoder when its worker started; ``auto`` takes whatever the node has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q

from media_engine.transcoder.encoders import AUTO_ORDER, LABELS
from routes.models import Node, Route

# Enough to show an operator where to look, short enough for the route's problem field.
LISTED_NODES = 8


@dataclass(frozen=True)
class Placement:
    node: Node | None
    problem: str = ""


@dataclass(frozen=True)
class EncoderNeed:
    """An explicit encoder one rendition of an output asks for."""

    kind: str
    profile: str
    output: str


def encoder_needs(route: Route) -> list[EncoderNeed]:
    """The encoders the route's enabled outputs ask for by name, output by output."""
    outputs = route.outputs.filter(enabled=True).select_related("profile").prefetch_related("ladder")
    return [
        EncoderNeed(profile.required_encoder, profile.name, output.name)
        for output in outputs
        for profile in output.renditions()
        if profile.required_encoder is not None
    ]


def missing(needs: list[EncoderNeed], capabilities: Iterable[str]) -> list[EncoderNeed]:
    have = set(capabilities)
    return [need for need in needs if need.kind not in have]


def _encoders(needs: list[EncoderNeed]) -> str:
    """E.g. 'the VAAPI encoder', 'the VAAPI and NVIDIA NVENC encoders'."""
    kinds = [kind for kind in AUTO_ORDER if any(need.kind == kind for need in needs)]
    kinds += sorted({need.kind for need in needs} - set(kinds))
    return f"the {_join([LABELS.get(kind, kind) for kind in kinds])} encoder{'s' if len(kinds) > 1 else ''}"


def describe_needs(needs: list[EncoderNeed]) -> str:
    """E.g. 'needs the VAAPI encoder (profile "hd" on output "cdn")'."""
    asked = list(dict.fromkeys(f'profile "{need.profile}" on output "{need.output}"' for need in needs))
    return f"needs {_encoders(needs)} ({'; '.join(asked)})"


def describe_encoders(capabilities: Iterable[str]) -> str:
    return ", ".join(LABELS.get(kind, kind) for kind in capabilities) or "no encoder"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _online(nodes: list[Node]) -> str:
    shown = [f"{node.name}: {describe_encoders(node.capabilities)}" for node in nodes[:LISTED_NODES]]
    more = f"; and {len(nodes) - LISTED_NODES} more" if len(nodes) > LISTED_NODES else ""
    return f"online: {'; '.join(shown)}{more}"


def place(route: Route) -> Placement:
    alive = Node.alive_nodes().annotate(load=Count("routes", filter=Q(routes__enabled=True)))
    needs = encoder_needs(route)
    if route.pinned_node_id is not None:
        pinned = alive.filter(pk=route.pinned_node_id).first()
        if pinned is None:
            name = route.pinned_node.name if route.pinned_node else "?"
            return Placement(None, f'pinned to node "{name}", which is not online')
        lacking = missing(needs, pinned.capabilities)
        if lacking:
            return Placement(
                None,
                f'{describe_needs(lacking)}, but it is pinned to node "{pinned.name}", which has only '
                f"{describe_encoders(pinned.capabilities)}",
            )
        return Placement(pinned)
    online = list(alive.order_by("load", "name"))
    able = [node for node in online if not missing(needs, node.capabilities)]
    if route.node_id is not None:
        current = next((node for node in able if node.pk == route.node_id), None)
        if current is not None:
            return Placement(current)
    candidates = [node for node in able if node.load < node.max_routes]
    if candidates:
        return Placement(candidates[0])
    if not online:
        return Placement(None, "no worker node is online")
    if not able:
        kinds = {need.kind for need in needs}
        which = "it" if len(kinds) == 1 else "them all"
        online.sort(key=lambda node: node.name)
        return Placement(None, f"{describe_needs(needs)}; no online node has {which} ({_online(online)})")
    if needs:
        return Placement(None, f"every online node with {_encoders(needs)} already runs its maximum number of routes")
    return Placement(None, "every online node already runs its maximum number of routes")
