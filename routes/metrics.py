"""The gateway's Prometheus metrics, read at scrape time from the shared live state.

Workers publish each route's state to the runtime store about once a second (``routes.runtime``);
nodes heartbeat into the database. This collector turns both into metrics when ``/metrics`` is
scraped, so whichever web process answers, it reports the same numbers: nothing is counted in
the web process itself.

Counters (``*_total``) are the media engine's own running totals. They start from zero whenever a
route's pipeline starts again (a restart, a move to another node, a reconnecting SRT link for the
link's figures), and they are exposed as they are: Prometheus' ``rate()`` and ``increase()`` take
such a drop for a counter reset. A total made up of several SRT readers of one listener output
also drops when a reader leaves, which Prometheus reads the same way.

Labels name configured objects only (route, input, output, node; at most a few hundred series per
route): never a peer address or a stream ID, which a caller chooses.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from routes.models import Input, Node, Output, Route
from routes.runtime import RUNNING, RouteRuntime, route_states

log = logging.getLogger(__name__)

ROUTE = ("route_id", "route")
INPUT = (*ROUTE, "input_id", "input", "protocol", "priority")
OUTPUT = (*ROUTE, "output_id", "output", "protocol")
# One family for the SRT links of inputs and outputs alike; ``direction`` says which.
SRT = (*ROUTE, "direction", "endpoint_id", "endpoint")
NODE = ("node",)


@dataclass(frozen=True)
class Spec:
    kind: str  # "gauge" or "counter"
    help: str
    labels: tuple[str, ...]


# Every metric the collector exposes, in the order of the exposition; the README's table lists them.
SPECS: dict[str, Spec] = {
    "vajracast_runtime_store_up": Spec("gauge", "1 when the live state of the routes could be read.", ()),
    # routes
    "vajracast_route_enabled": Spec("gauge", "1 when the route is meant to run.", ROUTE),
    "vajracast_route_up": Spec("gauge", "1 when a worker reports the route running.", ROUTE),
    "vajracast_route_on_slate": Spec("gauge", "1 when the route plays its slate: no input on air.", ROUTE),
    "vajracast_route_active_input_priority": Spec(
        "gauge", "Priority of the input on air (1 is the main input); 0 when none is.", ROUTE
    ),
    "vajracast_route_switches": Spec("counter", "Input switches since the pipeline started.", ROUTE),
    "vajracast_route_state_timestamp_seconds": Spec(
        "gauge", "When the route's worker last published its state (Unix time).", ROUTE
    ),
    # inputs
    "vajracast_input_connected": Spec("gauge", "1 when the input has a live connection.", INPUT),
    "vajracast_input_healthy": Spec("gauge", "1 when the input's media is healthy enough to go on air.", INPUT),
    "vajracast_input_active": Spec("gauge", "1 when the input is on air.", INPUT),
    "vajracast_input_bitrate_bits_per_second": Spec("gauge", "Received bitrate over the last second.", INPUT),
    "vajracast_input_received_bytes": Spec("counter", "Bytes received.", INPUT),
    "vajracast_input_messages": Spec("counter", "Messages (datagrams, SRT messages) received.", INPUT),
    "vajracast_input_ts_packets": Spec("counter", "MPEG-TS packets received.", INPUT),
    "vajracast_input_ts_errors": Spec(
        "counter", "MPEG-TS errors by kind: sync (lost packet alignment), cc (continuity counter).", (*INPUT, "kind")
    ),
    "vajracast_input_connects": Spec("counter", "Connections the input accepted or made.", INPUT),
    "vajracast_input_disconnects": Spec("counter", "Connections the input lost.", INPUT),
    "vajracast_input_dropped_messages": Spec("counter", "Messages dropped on the way in.", INPUT),
    # outputs
    "vajracast_output_connected": Spec("gauge", "1 when the output has a peer (or a target) it sends to.", OUTPUT),
    "vajracast_output_bitrate_bits_per_second": Spec("gauge", "Sent bitrate over the last second.", OUTPUT),
    "vajracast_output_sent_bytes": Spec("counter", "Bytes sent.", OUTPUT),
    "vajracast_output_messages": Spec("counter", "Messages sent.", OUTPUT),
    "vajracast_output_connects": Spec("counter", "Connections made or accepted (players, for a listener).", OUTPUT),
    "vajracast_output_disconnects": Spec("counter", "Connections lost.", OUTPUT),
    "vajracast_output_dropped_messages": Spec("counter", "Messages dropped because the output was full.", OUTPUT),
    "vajracast_output_readers": Spec("gauge", "Players connected to an SRT listener output.", OUTPUT),
    # SRT links
    "vajracast_srt_rtt_seconds": Spec("gauge", "Smoothed round-trip time (the worst reader's, for a listener).", SRT),
    "vajracast_srt_packets": Spec(
        "counter", "Data packets in the link's direction: received for an input, sent for an output.", SRT
    ),
    "vajracast_srt_lost_packets": Spec(
        "counter", "Packets lost: detected by an input, reported by the receiver for an output.", SRT
    ),
    "vajracast_srt_retransmitted_packets": Spec(
        "counter", "Retransmitted packets: received again by an input, sent again by an output.", SRT
    ),
    "vajracast_srt_dropped_packets": Spec("counter", "Packets dropped as too late to play.", SRT),
    "vajracast_srt_receive_buffer_seconds": Spec("gauge", "Media held in the receive buffer.", SRT),
    "vajracast_srt_send_buffer_seconds": Spec("gauge", "Media waiting in the send buffer.", SRT),
    # transcoders
    "vajracast_transcoder_fps": Spec("gauge", "Frames encoded per second, recently.", OUTPUT),
    "vajracast_transcoder_speed_ratio": Spec(
        "gauge", "Media seconds encoded per wall-clock second; below 1 is slower than realtime.", OUTPUT
    ),
    "vajracast_transcoder_behind": Spec("gauge", "1 when the transcoder falls behind realtime.", OUTPUT),
    "vajracast_transcoder_frames": Spec("counter", "Frames encoded.", OUTPUT),
    "vajracast_transcoder_dropped_frames": Spec("counter", "Frames dropped to keep up.", OUTPUT),
    "vajracast_transcoder_duplicated_frames": Spec("counter", "Frames repeated to fill gaps.", OUTPUT),
    "vajracast_transcoder_restarts": Spec("counter", "Times the transcoder was started again.", OUTPUT),
    "vajracast_transcoder_encoder_info": Spec(
        "gauge", "The video encoder in use (value always 1).", (*OUTPUT, "encoder")
    ),
    # nodes
    "vajracast_node_up": Spec("gauge", "1 when the node is online and its heartbeat is recent.", NODE),
    "vajracast_node_heartbeat_timestamp_seconds": Spec("gauge", "The node's last heartbeat (Unix time).", NODE),
    "vajracast_node_routes": Spec("gauge", "Routes running on the node.", NODE),
    "vajracast_node_max_routes": Spec("gauge", "Routes the node may run at most.", NODE),
}


@dataclass
class Families:
    """The metric families of one scrape, filled in any order and exposed in ``SPECS`` order."""

    families: dict[str, Metric] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in SPECS.items():
            family = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            self.families[name] = family(name, spec.help, labels=spec.labels)

    def add(self, name: str, labels: Iterable[str], value: float | int | bool | None) -> None:
        """Record a sample; a figure the engine did not report (None) is left out, not made zero."""
        if value is None:
            return
        values = list(labels)
        if len(values) != len(SPECS[name].labels):
            raise ValueError(f"{name} takes labels {SPECS[name].labels}, got {values}")
        self.families[name].add_metric(values, float(value))

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.families.values())


def _flag(value: object) -> int:
    return 1 if value else 0


def _number(data: dict[str, Any], key: str, scale: float = 1.0) -> float | None:
    value = data.get(key)
    return value * scale if isinstance(value, int | float) and not isinstance(value, bool) else None


class GatewayCollector(Collector):
    """Routes, their inputs and outputs, and the nodes, as of this scrape."""

    def collect(self) -> Iterator[Metric]:
        out = Families()
        routes = list(Route.objects.prefetch_related("inputs", "outputs").order_by("pk"))
        try:
            runtimes = route_states([route.pk for route in routes])
        except Exception as exc:  # noqa: BLE001 - the database side is still worth reporting
            log.warning("metrics: cannot read the live state of the routes: %s", exc)
            runtimes = None
        out.add("vajracast_runtime_store_up", (), runtimes is not None)
        running_on: Counter[str] = Counter()
        for route in routes:
            runtime = runtimes[route.pk] if runtimes is not None else None
            self._route(out, route, runtime)
            if runtime is not None and runtime.state == RUNNING and runtime.node:
                running_on[runtime.node] += 1
        self._nodes(out, running_on, counted=runtimes is not None)
        yield from out

    def _route(self, out: Families, route: Route, runtime: RouteRuntime | None) -> None:
        labels = (str(route.pk), route.name)
        out.add("vajracast_route_enabled", labels, route.enabled)
        if runtime is None:
            return
        running = runtime.state == RUNNING
        out.add("vajracast_route_up", labels, running)
        out.add("vajracast_route_on_slate", labels, running and runtime.on_slate)
        priority = runtime.active_priority if running and runtime.active_input is not None else 0
        out.add("vajracast_route_active_input_priority", labels, priority)
        out.add("vajracast_route_state_timestamp_seconds", labels, runtime.updated_at)
        if running:
            out.add("vajracast_route_switches", labels, runtime.switches)
        for item in route.inputs.all():
            self._input(out, labels, item, runtime)
        for item in route.outputs.all():
            self._output(out, labels, item, runtime)

    def _input(self, out: Families, route: tuple[str, str], item: Input, runtime: RouteRuntime) -> None:
        labels = (*route, str(item.pk), item.name, item.protocol, str(item.priority))
        reported = runtime.inputs.get(str(item.pk), {})
        stats: dict[str, Any] = reported.get("stats", {})
        out.add("vajracast_input_connected", labels, reported.get("state") == "connected")
        out.add("vajracast_input_healthy", labels, bool(reported.get("healthy")))
        out.add("vajracast_input_active", labels, runtime.state == RUNNING and runtime.active_input == item.pk)
        if not reported:
            return
        out.add("vajracast_input_bitrate_bits_per_second", labels, _number(stats, "bitrate_1s_bps"))
        for name, key in (
            ("vajracast_input_received_bytes", "bytes"),
            ("vajracast_input_messages", "messages"),
            ("vajracast_input_connects", "connects"),
            ("vajracast_input_disconnects", "disconnects"),
            ("vajracast_input_dropped_messages", "dropped_messages"),
        ):
            out.add(name, labels, _number(stats, key))
        ts = stats.get("ts") or {}
        out.add("vajracast_input_ts_packets", labels, _number(ts, "packets"))
        out.add("vajracast_input_ts_errors", (*labels, "sync"), _number(ts, "sync_errors"))
        out.add("vajracast_input_ts_errors", (*labels, "cc"), _number(ts, "cc_errors"))
        link = stats.get("srt")
        if link:
            srt = (*route, "input", str(item.pk), item.name)
            out.add("vajracast_srt_rtt_seconds", srt, _number(link, "rtt_ms", 0.001))
            out.add("vajracast_srt_packets", srt, _number(link, "packets_received"))
            out.add("vajracast_srt_lost_packets", srt, _number(link, "packets_lost_recv"))
            out.add("vajracast_srt_retransmitted_packets", srt, _number(link, "packets_retransmitted_recv"))
            out.add("vajracast_srt_dropped_packets", srt, _number(link, "packets_dropped_recv"))
            out.add("vajracast_srt_receive_buffer_seconds", srt, _number(link, "recv_buffer_ms", 0.001))
            out.add("vajracast_srt_send_buffer_seconds", srt, _number(link, "send_buffer_ms", 0.001))

    def _output(self, out: Families, route: tuple[str, str], item: Output, runtime: RouteRuntime) -> None:
        labels = (*route, str(item.pk), item.name, item.protocol)
        reported = runtime.outputs.get(str(item.pk), {})
        stats: dict[str, Any] = reported.get("stats", {})
        out.add("vajracast_output_connected", labels, reported.get("state") == "connected")
        if not reported:
            return
        out.add("vajracast_output_bitrate_bits_per_second", labels, _number(stats, "bitrate_1s_bps"))
        for name, key in (
            ("vajracast_output_sent_bytes", "bytes"),
            ("vajracast_output_messages", "messages"),
            ("vajracast_output_connects", "connects"),
            ("vajracast_output_disconnects", "disconnects"),
            ("vajracast_output_dropped_messages", "dropped_messages"),
        ):
            out.add(name, labels, _number(stats, key))
        readers = stats.get("readers")
        if isinstance(readers, list):
            out.add("vajracast_output_readers", labels, len(readers))
        links = [reader["srt"] for reader in readers or () if reader.get("srt")]
        if stats.get("srt"):
            links.append(stats["srt"])
        if links:
            self._output_links(out, (*route, "output", str(item.pk), item.name), links)
        transcode = stats.get("transcode")
        if transcode:
            self._transcoder(out, labels, transcode, _number(stats, "transcoder_restarts"))

    @staticmethod
    def _output_links(out: Families, srt: tuple[str, ...], links: list[dict[str, Any]]) -> None:
        """A listener output sends to each player over its own link: their counts add up, and the
        worst link's delay and buffers stand for the output."""

        def total(key: str) -> float | None:
            values = [value for link in links if (value := _number(link, key)) is not None]
            return sum(values) if values else None

        def worst(key: str, scale: float) -> float | None:
            values = [value for link in links if (value := _number(link, key, scale)) is not None]
            return max(values) if values else None

        out.add("vajracast_srt_rtt_seconds", srt, worst("rtt_ms", 0.001))
        out.add("vajracast_srt_packets", srt, total("packets_sent"))
        out.add("vajracast_srt_lost_packets", srt, total("packets_lost_send"))
        out.add("vajracast_srt_retransmitted_packets", srt, total("packets_retransmitted"))
        out.add("vajracast_srt_dropped_packets", srt, total("packets_dropped_send"))
        out.add("vajracast_srt_receive_buffer_seconds", srt, worst("recv_buffer_ms", 0.001))
        out.add("vajracast_srt_send_buffer_seconds", srt, worst("send_buffer_ms", 0.001))

    @staticmethod
    def _transcoder(out: Families, labels: tuple[str, ...], transcode: dict[str, Any], restarts: float | None) -> None:
        out.add("vajracast_transcoder_fps", labels, _number(transcode, "fps"))
        out.add("vajracast_transcoder_speed_ratio", labels, _number(transcode, "speed"))
        out.add("vajracast_transcoder_behind", labels, bool(transcode.get("behind")))
        out.add("vajracast_transcoder_frames", labels, _number(transcode, "frames"))
        out.add("vajracast_transcoder_dropped_frames", labels, _number(transcode, "dropped_frames"))
        out.add("vajracast_transcoder_duplicated_frames", labels, _number(transcode, "duplicated_frames"))
        out.add("vajracast_transcoder_restarts", labels, restarts)
        if transcode.get("encoder"):
            out.add("vajracast_transcoder_encoder_info", (*labels, str(transcode["encoder"])), 1)

    @staticmethod
    def _nodes(out: Families, running_on: Counter[str], *, counted: bool) -> None:
        for node in Node.objects.order_by("name"):
            labels = (node.name,)
            out.add("vajracast_node_up", labels, node.alive)
            heartbeat = node.last_heartbeat.timestamp() if node.last_heartbeat else None
            out.add("vajracast_node_heartbeat_timestamp_seconds", labels, heartbeat)
            out.add("vajracast_node_max_routes", labels, node.max_routes)
            if counted:
                out.add("vajracast_node_routes", labels, running_on[node.name])
