"""/metrics without live processes: what a published route state and the node rows turn into, the
bearer token, and the shape of the shipped dashboard and alert rules. tests/orchestration/
test_metrics_live.py checks the same endpoint against a live route, failover and players."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.utils import timezone

from routes.choices import NodeState
from routes.metrics import SPECS
from routes.models import Input, Node, Output, Route
from routes.runtime import RouteRuntime, publish_route_state
from tests.support.metrics import Scrape, load_alerts, load_dashboard, monitoring_metric_names
from vajracast.env import env_token

TOKEN = "s3cret-metrics-token-0123456789"
LINK = {"rtt_ms": 12.5, "packets_received": 900, "packets_lost_recv": 7, "packets_retransmitted_recv": 5}
LINK |= {"packets_dropped_recv": 2, "recv_buffer_ms": 118, "send_buffer_ms": 0}


def scrape(client: Client | None = None, **headers: str) -> Scrape:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return Scrape(response.content.decode())


@pytest.fixture
def live_route(route: Route, make_input: Callable[..., Input], make_output: Callable[..., Output]) -> Route:
    """Route "news" with two SRT inputs and a UDP output, as a worker on node "alpha" reports it."""
    main = make_input(name="main", port=9001)
    backup = make_input(name="backup", port=9002)
    out = make_output(name="venue")
    ts = {"packets": 5000, "sync_errors": 1, "cc_errors": 3}
    publish_route_state(
        route.pk,
        RouteRuntime(
            state="running",
            node="alpha",
            listeners_bound=True,
            active_input=backup.pk,
            active_priority=2,
            switches=3,
            inputs={
                str(main.pk): {"state": "listening", "healthy": False, "stats": {"bitrate_1s_bps": 0.0, "bytes": 10}},
                str(backup.pk): {
                    "state": "connected",
                    "healthy": True,
                    "stats": {"bitrate_1s_bps": 950_000.0, "bytes": 123_456, "messages": 95, "ts": ts, "srt": LINK},
                },
            },
            outputs={str(out.pk): {"state": "connected", "stats": {"bitrate_1s_bps": 940_000.0, "bytes": 120_000}}},
        ),
    )
    return route


def test_a_published_route_state_becomes_labelled_metrics(live_route: Route) -> None:
    Node.objects.create(name="alpha", state=NodeState.ONLINE, last_heartbeat=timezone.now(), max_routes=8)
    lost = Node.objects.create(
        name="beta", state=NodeState.ONLINE, last_heartbeat=timezone.now() - timedelta(minutes=1)
    )
    Route.objects.create(name="idle")
    _main, backup = live_route.inputs.order_by("priority")
    page = scrape()

    route = {"route_id": str(live_route.pk), "route": "news"}
    assert page.value("vajracast_runtime_store_up") == 1
    assert page.value("vajracast_route_up", **route) == 1
    assert page.value("vajracast_route_active_input_priority", **route) == 2
    assert page.value("vajracast_route_switches_total", **route) == 3
    assert page.types["vajracast_route_switches"] == "counter"
    assert page.value("vajracast_route_on_slate", **route) == 0

    on_air = {**route, "input_id": str(backup.pk), "input": "backup", "protocol": "srt", "priority": "2"}
    assert page.value("vajracast_input_active", **on_air) == 1
    assert page.value("vajracast_input_active", input="main") == 0
    assert page.value("vajracast_input_healthy", input="main") == 0
    assert page.value("vajracast_input_connected", **on_air) == 1
    assert page.value("vajracast_input_bitrate_bits_per_second", **on_air) == 950_000
    assert page.value("vajracast_input_received_bytes_total", **on_air) == 123_456
    assert page.value("vajracast_input_ts_packets_total", **on_air) == 5000
    assert page.value("vajracast_input_ts_errors_total", **on_air, kind="cc") == 3
    assert page.value("vajracast_input_ts_errors_total", **on_air, kind="sync") == 1
    link = {**route, "direction": "input", "endpoint_id": str(backup.pk), "endpoint": "backup"}
    assert page.value("vajracast_srt_rtt_seconds", **link) == pytest.approx(0.0125)
    assert page.value("vajracast_srt_lost_packets_total", **link) == 7
    assert page.value("vajracast_srt_retransmitted_packets_total", **link) == 5
    assert page.value("vajracast_srt_receive_buffer_seconds", **link) == pytest.approx(0.118)
    assert not page.find("vajracast_srt_rtt_seconds", endpoint="main"), "no link, no link figures"
    assert page.value("vajracast_output_bitrate_bits_per_second", output="venue", protocol="udp") == 940_000

    # A route nobody runs: configured, down, and no counters made up for it.
    idle = Route.objects.get(name="idle")
    assert page.value("vajracast_route_up", route="idle") == 0
    assert page.value("vajracast_route_enabled", route_id=str(idle.pk)) == 0
    assert page.value("vajracast_route_active_input_priority", route="idle") == 0
    assert not page.find("vajracast_route_switches_total", route="idle")

    assert page.value("vajracast_node_up", node="alpha") == 1
    assert page.value("vajracast_node_routes", node="alpha") == 1
    assert page.value("vajracast_node_max_routes", node="alpha") == 8
    assert page.value("vajracast_node_up", node="beta") == 0
    assert page.value("vajracast_node_routes", node="beta") == 0
    assert page.value("vajracast_node_heartbeat_timestamp_seconds", node="beta") == pytest.approx(
        lost.last_heartbeat.timestamp()
    )
    # No label names a peer: the label sets are the configured objects'.
    requests = [s for s in page.samples if s.name.startswith("vajracast_django_")]
    gateway = [s for s in page.samples if s.name.startswith("vajracast_") and s not in requests]
    assert {label for s in gateway for label in s.labels} <= {
        "route_id", "route", "input_id", "input", "output_id", "output", "protocol", "priority", "kind",
        "direction", "endpoint_id", "endpoint", "encoder", "node",
    }  # fmt: skip
    # django-prometheus' request metrics: bounded by the app's own views, templates and methods.
    assert {label for s in requests for label in s.labels} <= {
        "method",
        "status",
        "view",
        "le",
        "transport",
        "type",
        "vendor",
        "charset",
        "templatename",
    }


def test_request_metrics_are_named_under_the_prefix_and_count_requests(db: None) -> None:
    client = Client()
    before = scrape(client).value("vajracast_django_http_requests_total_by_method_total", method="GET")
    after = scrape(client).value("vajracast_django_http_requests_total_by_method_total", method="GET")
    assert after == before + 1


def test_without_a_token_metrics_need_no_credentials(db: None, settings: object) -> None:
    assert Client().get("/metrics").status_code == 200
    assert Client().get("/metrics/").status_code == 200
    assert Client().post("/metrics").status_code == 405


def test_a_token_is_required_and_compared_when_set(db: None, settings: object) -> None:
    settings.VAJRACAST_METRICS_TOKEN = TOKEN  # type: ignore[attr-defined]
    missing = Client().get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith('Bearer realm="metrics"')
    assert b"vajracast_" not in missing.content
    assert Client().get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    wrong = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
    assert wrong.status_code == 403
    assert b"vajracast_" not in wrong.content
    assert Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 403
    page = scrape(Authorization=f"Bearer {TOKEN}")
    assert page.value("vajracast_runtime_store_up") == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("short", "at least 16 characters"),
        ("has a space in it, sadly", "printable ASCII"),
        ("tab\there-0123456789", "printable ASCII"),
    ],
)
def test_a_bad_token_stops_the_process(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("VAJRACAST_METRICS_TOKEN", value)
    with pytest.raises(ImproperlyConfigured, match=f"VAJRACAST_METRICS_TOKEN.*{problem}"):
        env_token("VAJRACAST_METRICS_TOKEN")


def test_no_token_configured_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAJRACAST_METRICS_TOKEN", raising=False)
    assert env_token("VAJRACAST_METRICS_TOKEN") is None
    monkeypatch.setenv("VAJRACAST_METRICS_TOKEN", TOKEN)
    assert env_token("VAJRACAST_METRICS_TOKEN") == TOKEN


def test_the_alert_rules_have_the_shape_prometheus_needs() -> None:
    rules = load_alerts()
    assert set(rules) == {"groups"}
    alerts = {}
    for group in rules["groups"]:
        assert set(group) == {"name", "rules"}, group
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            if "record" in rule:
                assert set(rule) == {"record", "expr"}, rule
                continue
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["expr"].strip()
            assert rule["for"] is not None, rule
            assert str(rule["for"])[-1] in "smh", rule
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule
            assert {"summary", "description"} <= set(rule["annotations"]), rule
            alerts[rule["alert"]] = rule["expr"]
    names = list(alerts)
    assert len(names) == len(set(names)), "alert names are unique"
    # The list: input down, failover, SRT loss, node missing, transcoder behind realtime.
    assert "vajracast_input_healthy" in alerts["VajraCastInputDown"]
    assert "vajracast_route_switches_total" in alerts["VajraCastFailover"]
    assert "vajracast:srt_loss_ratio:rate1m > 0.02" in alerts["VajraCastSrtLoss"]
    assert "vajracast_node_heartbeat_timestamp_seconds" in alerts["VajraCastNodeMissing"]
    assert "vajracast_transcoder_behind" in alerts["VajraCastTranscoderBehind"]


def test_the_dashboard_is_a_grafana_dashboard_over_these_metrics() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(target["expr"] for target in panel["targets"]), panel["title"]
    titles = " ".join(panel["title"] for panel in panels).lower()
    for topic in (
        "routes up",
        "input bitrate",
        "round-trip",
        "loss",
        "switches",
        "priority",
        "transcoder speed",
        "node",
    ):
        assert topic in titles, topic
    # Every gateway metric they use exists (the live test checks them against a real scrape).
    exposed = {name for name, spec in SPECS.items() for name in (name, f"{name}_total")}
    for file, names in monitoring_metric_names().items():
        own = {name for name in names if not name.startswith("vajracast_django_")}
        assert own <= exposed, (file, own - exposed)
