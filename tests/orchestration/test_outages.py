"""What a running route survives: the broker and runtime store restarting, a port someone else holds,
and its worker being stopped on purpose."""

from __future__ import annotations

import signal
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from routes.choices import EventKind, NodeState
from routes.models import Node, RouteLease
from tests.orchestration.cluster import Cluster, Operator, events, srt_route, wait_for
from tests.peers.media import free_udp_port

pytestmark = pytest.mark.django_db(transaction=True)

# The 1 s for start and stop, with a second of slack for a loaded 2-core CI machine.
TAKES_EFFECT_S = 1.0 + 1.0
# Longer than the published state's expiry (5 s) and the lease renewal period (1.5 s).
OUTAGE_S = 8
STREAM_BYTES_PER_S = 120_000  # the test stream: about 1 Mbit/s


def test_the_pipeline_keeps_relaying_while_redis_restarts(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.worker("alpha")
    ingest, play = free_udp_port(), free_udp_port()
    route = srt_route("news", ingest, play)
    operator = Operator(operator_api, route)
    operator.start()
    cluster.encoder(stream_ts, ingest)
    player = cluster.player(play)
    player.wait_for_media(30, "media before the outage")

    cluster.redis.stop()
    growth: list[int] = []
    for _second in range(OUTAGE_S):
        before = player.received()
        time.sleep(1)
        growth.append(player.received() - before)
    cluster.redis.start()
    print(f"redis down for {OUTAGE_S}s; bytes at the player each second: {growth}")
    # Every second of the outage brought media, not just the first ones out of a buffer.
    assert min(growth) > STREAM_BYTES_PER_S // 4, growth

    took_running = wait_for(lambda: operator.status()["state"] == "running", 30, "the status to show running")
    print(f"redis back: the status shows running after {took_running:.2f}s")
    assert operator.status()["node"] == "alpha"
    player.wait_for_media(10, "media after the outage")

    took_stop = operator.stop()
    print("stop after the outage: " + ", ".join(f"{what} after {s:.2f}s" for what, s in took_stop.items()))
    assert max(took_stop.values()) <= TAKES_EFFECT_S, took_stop
    assert not RouteLease.held().filter(route=route).exists()

    # The broker works again for this process and for the worker: a start goes all the way.
    took_start = operator.start()
    print(f"start after the outage: running after {took_start:.2f}s")
    player.wait_for_media(30, "media after starting again")
    errors = [e.message for e in events(route, EventKind.ERROR)]
    assert errors == [], errors


def test_a_route_whose_port_is_taken_fails_with_the_reason_and_the_others_keep_running(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.worker("alpha")
    ingest, play = free_udp_port(), free_udp_port()
    news = Operator(operator_api, srt_route("news", ingest, play))
    news.start()
    cluster.encoder(stream_ts, ingest)
    player = cluster.player(play)
    player.wait_for_media(30, "media on the healthy route")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        # Another program on the node holds the port the route listens on.
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        sport = srt_route("sport", taken, free_udp_port())
        blocked = Operator(operator_api, sport)
        blocked.post("start")
        took = wait_for(lambda: events(sport, EventKind.ERROR), 30, "an error event on the blocked route")
        failed = wait_for(lambda: blocked.status()["state"] == "failed", 10, "the status to show failed")
        message = events(sport, EventKind.ERROR)[0].message
        print(f"port taken: error event after {took:.2f}s, status failed {failed:.2f}s later: {message}")

        assert message.startswith("could not start: "), message
        assert f"127.0.0.1:{taken}" in message, message
        status = blocked.status()
        assert status["reason"] == message
        assert status["node"] == "alpha"
        assert not RouteLease.held().filter(route=sport).exists()
        assert events(sport, EventKind.STARTED) == []

        # The worker and its other route carry on.
        player.wait_for_media(10, "media on the healthy route after the failure")
        assert news.status()["state"] == "running"


def test_sigterm_drains_the_worker_and_releases_its_leases_at_once(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    worker = cluster.worker("alpha")
    routes, players = [], []
    for name in ("news", "sport"):
        ingest, play = free_udp_port(), free_udp_port()
        route = srt_route(name, ingest, play)
        Operator(operator_api, route).start()
        cluster.encoder(stream_ts, ingest)
        routes.append(route)
        players.append(cluster.player(play, name=name))
    for player in players:
        player.wait_for_media(30, "media before the SIGTERM")

    asked_at = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = worker.process.popen.wait(timeout=60)
    exited_at = timezone.now()
    print(f"SIGTERM: the worker drained and exited in {time.monotonic() - asked_at:.2f}s")

    assert code == 0, worker.process.tail()
    assert not RouteLease.held().exists()
    for route in routes:
        lease = RouteLease.objects.get(route=route)
        # Released by the drain, not left to run out its 5 s.
        assert lease.expires_at <= exited_at + timedelta(seconds=1), (lease.expires_at, exited_at)
        print(f"{route.name}: lease expired {(exited_at - lease.expires_at).total_seconds():.2f}s before the exit")
        assert [e.message for e in events(route, EventKind.STOPPED)] == ['stopped on node "alpha"']
        assert Operator(operator_api, route).status()["state"] != "running"
    assert Node.objects.get(name="alpha").state == NodeState.OFFLINE
