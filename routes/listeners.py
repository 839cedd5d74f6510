"""Which listeners may share a port.

Two sockets cannot bind the same port and transport on one node, with three exceptions the engine
demultiplexes itself: SRT listeners told apart by stream ID, RTMP publishers told apart by stream
key, and UDP inputs joined to different multicast groups.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routes.models.endpoints import Endpoint


@dataclass(frozen=True)
class Listener:
    transport: str  # "udp" or "tcp": what the socket binds
    protocol: str
    shares_by_streamid: bool  # an SRT listener; a rendezvous socket cannot share its port
    port: int
    streamid: str
    stream_key: str
    multicast_group: str
    label: str

    @classmethod
    def of(cls, endpoint: Endpoint) -> Listener | None:
        if not endpoint.binds_port or endpoint.port is None:
            return None
        group = ""
        if endpoint.protocol == "udp" and endpoint.host:
            try:
                if ipaddress.ip_address(endpoint.host).is_multicast:
                    group = endpoint.host
            except ValueError:
                pass
        kind = "input" if endpoint._meta.model_name == "input" else "output"
        role = "rendezvous" if endpoint.is_srt and not endpoint.is_listener else "listener"
        route_name = endpoint.route.name if endpoint.route_id else "?"
        return cls(
            transport="tcp" if endpoint.protocol == "rtmp" else "udp",
            protocol=endpoint.protocol,
            shares_by_streamid=endpoint.is_srt and endpoint.is_listener,
            port=endpoint.port,
            streamid=endpoint.streamid,
            stream_key=endpoint.stream_key,
            multicast_group=group,
            label=f'{endpoint.protocol.upper()} {role} {kind} "{endpoint.name}" of route "{route_name}"',
        )

    def conflict_with(self, other: Listener) -> str | None:
        if self.transport != other.transport or self.port != other.port:
            return None
        taken = f"Port {self.port}/{self.transport} is already used by the {other.label}."
        if self.protocol == other.protocol == "srt":
            if not (self.shares_by_streamid and other.shares_by_streamid):
                return f"{taken} An SRT rendezvous needs a port of its own."
            if self.streamid and other.streamid and self.streamid != other.streamid:
                return None
            return f"{taken} SRT listeners can share a port only when each has its own stream ID."
        if self.protocol == other.protocol == "rtmp":
            if self.stream_key != other.stream_key:
                return None
            return f"{taken} RTMP inputs on one port need different stream keys."
        if self.protocol == other.protocol == "udp":
            if self.multicast_group and other.multicast_group and self.multicast_group != other.multicast_group:
                return None
            return f"{taken} UDP inputs can share a port only when each joins its own multicast group."
        return f"{taken} Choose another port."


def find_conflict(endpoint: Endpoint) -> str | None:
    """A message naming the listener that already holds this endpoint's port, or None."""
    from routes.models import Input, Output

    mine = Listener.of(endpoint)
    if mine is None:
        return None
    for model in (Input, Output):
        others = model.objects.filter(port=mine.port).select_related("route")
        if isinstance(endpoint, model) and endpoint.pk is not None:
            others = others.exclude(pk=endpoint.pk)
        for other in others:
            theirs = Listener.of(other)
            if theirs is not None:
                problem = mine.conflict_with(theirs)
                if problem:
                    return problem
    return None
