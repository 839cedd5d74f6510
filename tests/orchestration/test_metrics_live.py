"""/metrics against live routes: a real worker relaying from live ffmpeg encoders to
srt-live-transmit players, scraped in this process and through a real gunicorn with two workers.

The numbers are checked against the route's status (the same published state, so they must be
equal when both read the same publication) and against what the player at the other end of the SRT
output counts itself (within the tolerance of two clocks sampling a moving stream).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.multiprocess import MultiProcessCollector
from rest_framework.test import APIClient

from routes.models import Output, TranscodeProfile
from routes.runtime import route_state
from tests.orchestration.cluster import Cluster, Operator, srt_route, wait_for
from tests.orchestration.test_failover import MAIN_TSID, SWITCH_SEEN_S, main_on_air_backup_standing_by
from tests.peers.media import ffmpeg_live_encoder, ffmpeg_srt_url, free_udp_port
from tests.support.metrics import Scrape, monitoring_metric_names
from tests.support.processes import (
    PYTHON,
    RunningProcess,
    environment,
    fetch,
    free_port,
    start_process,
    stop_process_tree,
    wait_for_url,
)

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "live-metrics-token-0123456789abcdef"
REQUESTS = "vajracast_django_http_requests_total_by_method_total"


def scrape_here() -> Scrape:
    response = Client().get("/metrics")
    assert response.status_code == 200, response.content
    return Scrape(response.content.decode())


def same_publication(route_id: int, operator: Operator) -> tuple[Scrape, dict[str, Any]]:
    """A scrape and a status that read the same publication of the route's state."""
    for _attempt in range(20):
        page = scrape_here()
        status = operator.status()
        published = page.value("vajracast_route_state_timestamp_seconds", route_id=str(route_id))
        if status["updated_at"] and datetime.fromisoformat(status["updated_at"]).timestamp() == pytest.approx(
            published, abs=1e-3
        ):
            return page, status
        time.sleep(0.1)
    raise AssertionError("the scrape and the status never read the same publication")


def test_metrics_follow_a_live_route_and_its_failover(cluster: Cluster, operator_api: APIClient) -> None:
    with main_on_air_backup_standing_by(cluster, operator_api, name="metered") as setup:
        route = {"route_id": str(setup.route.pk), "route": "metered"}
        main = {**route, "input_id": str(setup.main.pk), "input": "main", "protocol": "srt", "priority": "1"}
        backup = {**route, "input_id": str(setup.backup.pk), "input": "backup", "protocol": "srt", "priority": "2"}
        main_link = {**route, "direction": "input", "endpoint_id": str(setup.main.pk), "endpoint": "main"}

        took = wait_for(
            lambda: scrape_here().find("vajracast_input_bitrate_bits_per_second", **main)[0].value > 100_000,
            15,
            "the main input's bitrate in /metrics",
            every_s=0.25,
        )
        print(f"/metrics shows the main input's bitrate {took:.2f}s after both inputs were healthy")
        page, status = same_publication(setup.route.pk, setup.operator)
        on_air = {i["id"]: i for i in status["inputs"]}[setup.main.pk]
        print(f"main input: {on_air['stats']['bitrate_1s_bps']:.0f} bit/s, rtt {on_air['stats']['srt']['rtt_ms']} ms")
        assert page.value("vajracast_route_up", **route) == 1
        assert page.value("vajracast_route_active_input_priority", **route) == 1
        assert page.value("vajracast_route_switches_total", **route) == 0
        assert page.value("vajracast_input_active", **main) == 1
        assert page.value("vajracast_input_active", **backup) == 0
        bitrate = page.value("vajracast_input_bitrate_bits_per_second", **main)
        assert 400_000 < bitrate < 3_000_000, "a live encoder at about 0.9 Mbit/s"
        # One publication, two renderings: the same figures.
        assert bitrate == on_air["stats"]["bitrate_1s_bps"]
        assert page.value("vajracast_input_received_bytes_total", **main) == on_air["stats"]["bytes"]
        assert page.value("vajracast_input_ts_packets_total", **main) == on_air["stats"]["ts"]["packets"]
        rtt = page.value("vajracast_srt_rtt_seconds", **main_link)
        assert rtt == pytest.approx(on_air["stats"]["srt"]["rtt_ms"] / 1000)
        assert 0 < rtt < 0.1, "loopback"
        assert page.value("vajracast_srt_packets_total", **main_link) == on_air["stats"]["srt"]["packets_received"]
        assert page.value("vajracast_input_ts_errors_total", **main, kind="cc") == 0

        # Every gateway metric the shipped dashboard and alert rules query is in this real scrape, so
        # a renamed metric fails here. Transcoder series only exist for a transcoding output: the
        # next test has one and checks they carry samples.
        exposed = page.names()
        for file, names in monitoring_metric_names().items():
            assert names <= exposed, (file, sorted(names - exposed))
            idle = {n for n in names if not page.find(n) and not page.find(f"{n}_total")}
            assert {n for n in idle if not n.startswith("vajracast_transcoder_")} == set(), (file, idle)

        os.kill(setup.encoders[MAIN_TSID].pid, signal.SIGKILL)
        setup.encoders[MAIN_TSID].popen.wait(timeout=10)
        killed_at = time.monotonic()

        def switched() -> bool:
            page = scrape_here()
            return page.value("vajracast_route_switches_total", **route) == 1

        took = wait_for(switched, SWITCH_SEEN_S, "the switch in /metrics", every_s=0.25)
        print(f"/metrics counts the switch {time.monotonic() - killed_at:.2f}s after the main encoder was killed")
        page, status = same_publication(setup.route.pk, setup.operator)
        assert status["switches"] == 1
        assert page.value("vajracast_route_switches_total", **route) == 1
        assert page.value("vajracast_route_active_input_priority", **route) == 2 == status["active_priority"]
        assert page.value("vajracast_input_active", **main) == 0
        assert page.value("vajracast_input_active", **backup) == 1
        assert page.value("vajracast_input_healthy", **main) == 0
        assert page.value("vajracast_input_bitrate_bits_per_second", **backup) > 100_000
        assert page.value("vajracast_route_on_slate", **route) == 0


def player_with_stats(port: int, stats: Path) -> RunningProcess:
    """srt-live-transmit playing the route's SRT output and writing its own counters (full totals,
    as JSON lines, every 25 packets)."""
    slt = ["srt-live-transmit", "-q", "-s:25", f"-statsout:{stats}", "-pf:json", "-f"]
    slt += [f"srt://127.0.0.1:{port}", "file://con"]
    return start_process(["sh", "-c", f"exec {shlex.join(slt)} > /dev/null"], env=environment(), name="player")


def player_figures(stats: Path) -> list[dict[str, Any]]:
    figures = []
    for line in stats.read_text(encoding="utf-8").splitlines():
        try:
            figures.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the line it is writing right now
    return figures


def player_packets_at(figures: list[dict[str, Any]], moment: float) -> float:
    """The player's received-packet total at a wall-clock moment, between two of its reports."""
    points = [(datetime.fromisoformat(f["timepoint"]).timestamp(), f["recv"]["packets"]) for f in figures]
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if t0 <= moment <= t1:
            return p0 + (p1 - p0) * (moment - t0) / (t1 - t0)
    raise AssertionError(f"no report of the player's around {moment}: {points[0][0]} .. {points[-1][0]}")


@contextmanager
def gunicorn(cluster: Cluster, multiprocess_dir: Path) -> Iterator[tuple[str, RunningProcess]]:
    """The web server as ``manage.py serve`` runs it (two workers, the metrics hooks), on the
    cluster's database and store, with the metrics token set. Stopped by its PID."""
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "vajracast.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "2", "--threads", "4", "--no-control-socket", "--timeout", "60"]
    argv += ["--config", "python:vajracast.gunicorn_conf"]
    env = cluster.env(PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir), VAJRACAST_METRICS_TOKEN=TOKEN)
    process = start_process(argv, env=env, name=f"gunicorn on port {port}")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_url(f"{base}/api/health", process)
        yield base, process
    finally:
        stop_process_tree(process)


def requests_by_process(directory: Path) -> dict[str, float]:
    """GET requests each web process counted, from its own metrics file."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == REQUESTS and sample.labels.get("method") == "GET":
                    counted[path.stem.removeprefix("counter_")] = sample.value
    return counted


def test_two_web_workers_agree_and_the_player_agrees_with_the_output(
    cluster: Cluster, operator_api: APIClient, tmp_path: Path
) -> None:
    cluster.worker("alpha")
    ingest, play, sink_port = free_udp_port(), free_udp_port(), free_udp_port()
    route = srt_route("metered", ingest, play)
    # A transcoding output as well, small and cheap, so the transcoder's metrics are live too.
    small = TranscodeProfile.objects.create(name="tiny", width=320, height=180, video_bitrate_kbps=200, gop=25)
    Output.objects.create(
        route=route, name="tiny", protocol="udp", host="127.0.0.1", port=sink_port, profile=small
    )  # fmt: skip
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # somewhere for the UDP output to land
    sink.bind(("127.0.0.1", sink_port))
    operator = Operator(operator_api, route)
    operator.start()
    cluster.processes.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", ingest), tsid=1, tone_hz=1000))
    stats = tmp_path / "player-stats.json"
    cluster.processes.append(player_with_stats(play, stats))
    relay = {"route_id": str(route.pk), "route": "metered", "output": "metered-output", "protocol": "srt"}
    link = {"route_id": str(route.pk), "direction": "output", "endpoint": "metered-output"}
    tiny = {"route_id": str(route.pk), "output": "tiny"}

    def flowing() -> bool:
        page = scrape_here()
        out = page.find("vajracast_srt_packets_total", **link)
        fps = page.find("vajracast_transcoder_fps", **tiny)
        return bool(out and out[0].value > 200 and fps and fps[0].value > 0 and len(player_figures(stats)) > 8)

    took = wait_for(flowing, 60, "media at the player and the transcoder running", every_s=0.5)
    print(f"media flowing through both outputs after {took:.1f}s")

    # The output's counters against the player's own, at the moment the worker published them.
    page = scrape_here()
    published = page.value("vajracast_route_state_timestamp_seconds", route_id=str(route.pk))
    sent = page.value("vajracast_srt_packets_total", **link)
    wait_for(lambda: datetime.fromisoformat(player_figures(stats)[-1]["timepoint"]).timestamp() > published, 10,
             "a report of the player's after the publication")  # fmt: skip
    figures = player_figures(stats)
    received = player_packets_at(figures, published)
    print(f"output sent {sent:.0f} packets; the player had received {received:.0f} by then")
    assert abs(sent - received) <= 20 + 0.05 * received
    player_rate = figures[-1]["recv"]["mbitRate"] * 1_000_000
    bitrate = page.value("vajracast_output_bitrate_bits_per_second", **relay)
    print(f"output bitrate {bitrate:.0f} bit/s, the player's receive rate {player_rate:.0f} bit/s")
    assert bitrate == pytest.approx(player_rate, rel=0.35)
    player_rtt = figures[-1]["link"]["rtt"] / 1000
    assert abs(page.value("vajracast_srt_rtt_seconds", **link) - player_rtt) < 0.02
    assert page.value("vajracast_output_readers", **relay) == 1
    assert page.value("vajracast_srt_lost_packets_total", **link) == 0
    assert page.value("vajracast_transcoder_speed_ratio", **tiny) > 0.5
    assert page.value("vajracast_transcoder_frames_total", **tiny) > 0
    assert page.value("vajracast_transcoder_behind", **tiny) in (0, 1)
    for name in monitoring_metric_names()["alerts.yaml"] | monitoring_metric_names()["grafana-dashboard.json"]:
        assert page.find(name) or page.find(f"{name}_total"), f"{name} has no sample"

    multiprocess_dir = tmp_path / "prometheus"
    multiprocess_dir.mkdir()
    (multiprocess_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")
    with gunicorn(cluster, multiprocess_dir) as (base, server):
        assert not (multiprocess_dir / "counter_999999.db").exists(), "the server starts from clean files"
        assert fetch(f"{base}/metrics").status == 401
        assert fetch(f"{base}/metrics", headers={"Authorization": "Bearer not-the-token-at-all"}).status == 403
        bearer = {"Authorization": f"Bearer {TOKEN}"}

        def remote() -> Scrape:
            response = fetch(f"{base}/metrics", headers=bearer)
            assert response.status == 200, response.text
            return Scrape(response.text)

        # Bursts of parallel scrapes until both workers have answered some.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _burst in range(25):
                list(pool.map(lambda _n: remote(), range(4)))
                if len([n for n in requests_by_process(multiprocess_dir).values() if n > 0]) >= 2:
                    break
        answered = requests_by_process(multiprocess_dir)
        print(f"GET requests per web worker: {answered}")
        assert len([n for n in answered.values() if n > 0]) == 2, f"both workers answered: {answered}"

        # One at a time: whichever worker answers, the request count is every worker's, it grows by
        # one scrape each time, and the route's figures are the same whenever they come from one
        # publication.
        pages = [remote() for _ in range(30)]
        counts = [page.value(REQUESTS, method="GET") for page in pages]
        assert all(later == earlier + 1 for earlier, later in itertools.pairwise(counts)), counts
        assert counts[0] >= sum(answered.values())
        served = requests_by_process(multiprocess_dir)
        assert len([n for n in served.values() if n > 0]) == 2
        assert sum(served.values()) >= counts[-1], (served, counts[-1])
        same, changed = 0, 0
        for earlier, later in itertools.pairwise(pages):
            stamp = "vajracast_route_state_timestamp_seconds"
            if earlier.value(stamp, route_id=str(route.pk)) == later.value(stamp, route_id=str(route.pk)):
                assert earlier.of_routes() == later.of_routes()
                same += 1
            else:
                changed += 1
                assert later.value("vajracast_route_up", route_id=str(route.pk)) == 1
        print(f"consecutive scrapes: {same} pairs of one publication, {changed} across publications")
        assert same > 0
        assert server.popen.poll() is None
    sink.close()
    assert route_state(route.pk).state == "running"
