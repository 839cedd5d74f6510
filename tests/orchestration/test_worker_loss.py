"""Workers that die, come back or freeze: the route runs again, and never twice at once.

Each test samples the route's lease and published state every 0.1 s from start to end
(``LeaseWatch``): the lease changes hands only after it expired, and its fencing token only grows.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind
from routes.models import Route, RouteLease
from tests.orchestration.cluster import Cluster, LeaseWatch, Operator, events, node_of, srt_route, wait_for
from tests.peers.media import free_udp_port

pytestmark = pytest.mark.django_db(transaction=True)

# Lease TTL (5 s) plus a reconcile period (2 s) plus the encoder noticing its dead peer; the issue
# says 10 s, a loaded 2-core CI machine gets 5 s of slack.
RESTART_RELAYS_WITHIN_S = 10 + 5
# The issue: node heartbeat timeout (10 s) plus lease TTL (5 s), allow 30 s. The first reconcile
# after the lease expires still finds the dead node's heartbeat fresh and sends the route there once
# more; the dispatch grace (10 s) then holds the route back, so expect about 18 s, and 30 s is the
# bound with slack for a loaded 2-core CI machine.
MOVES_WITHIN_S = 30
# A resumed runner renews at its next poll (0.25 s); "a couple of seconds" with 3 s of slack.
FENCED_WITHIN_S = 2 + 3


def lease_owner(route: Route) -> str | None:
    return RouteLease.held().filter(route=route).values_list("owner", flat=True).first()


def listener_route(api: APIClient) -> tuple[Route, Operator, int, int]:
    """A route with an SRT listener input and output; returns it with its ingest and output ports."""
    ingest, play = free_udp_port(), free_udp_port()
    route = srt_route("news", ingest, play)
    return route, Operator(api, route), ingest, play


def test_a_worker_killed_and_restarted_relays_again_without_a_second_copy(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.beat()
    first = cluster.worker("alpha")
    route, operator, ingest, play = listener_route(operator_api)
    with LeaseWatch(route.pk) as watch:
        operator.start()
        cluster.encoder(stream_ts, ingest)
        player = cluster.player(play)
        player.wait_for_media(30, "media before the kill")
        owner_before = lease_owner(route)
        assert owner_before is not None
        assert f":{first.pid}:" in owner_before

        killed_at = time.monotonic()
        first.kill()
        at_kill = player.received()
        second = cluster.worker("alpha")
        player.wait_for_media(60, "media after the restart", since=at_kill)
        took = time.monotonic() - killed_at
        print(f"kill -9 and restart: the player receives media again {took:.1f}s after the kill")
        wait_for(lambda: operator.status()["state"] == "running", 10, "the status to show running again")
        time.sleep(2)  # a little more of the watch with the new pipeline settled

    watch.assert_one_pipeline_at_a_time()
    watch.assert_state_follows_lease()
    owners = watch.owners()
    assert len(owners) == 2, owners
    assert owners[0] == owner_before
    assert f":{second.pid}:" in owners[1]
    assert took <= RESTART_RELAYS_WITHIN_S
    # The killed worker had no chance to record anything; the new one says where it runs.
    assert [e.message for e in events(route, EventKind.STARTED)] == ['started on node "alpha"'] * 2


def test_routes_of_a_worker_gone_for_good_move_to_the_other_worker(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.beat()
    alpha = cluster.worker("alpha")
    cluster.worker("bravo")
    route, operator, ingest, play = listener_route(operator_api)
    with LeaseWatch(route.pk) as watch:
        operator.start()
        # Both nodes are empty: the tie goes to the first by name.
        assert operator.status()["node"] == "alpha"
        cluster.encoder(stream_ts, ingest)
        player = cluster.player(play)
        player.wait_for_media(30, "media before the kill")

        killed_at = time.monotonic()
        alpha.kill()
        at_kill = player.received()
        player.wait_for_media(MOVES_WITHIN_S + 30, "media from the other worker", since=at_kill)
        took = time.monotonic() - killed_at
        print(f"kill -9 for good: the player receives media from the other worker {took:.1f}s after the kill")
        wait_for(lambda: operator.status()["node"] == "bravo", 10, "the status to name the new node")
        time.sleep(2)

    watch.assert_one_pipeline_at_a_time()
    watch.assert_state_follows_lease()
    assert [node_of(owner) for owner in watch.owners()] == ["alpha", "bravo"]
    assert took <= MOVES_WITHIN_S
    route.refresh_from_db()
    assert route.node is not None
    assert route.node.name == "bravo"
    assert operator.status()["state"] == "running"


def test_a_paused_worker_finds_its_lease_taken_and_stops_its_copy(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.beat()
    alpha = cluster.worker("alpha")
    cluster.worker("bravo")
    # Both workers share this machine's ports, and a paused process keeps its sockets: a listener
    # could not move while alpha sleeps. So the route calls its peers instead; then nothing but the
    # lease would stop two copies from running side by side.
    ingest, play = free_udp_port(), free_udp_port()
    cluster.encoder(stream_ts, ingest, listen=True)
    player = cluster.player(play, listen=True)
    route = srt_route("news", ingest, play, mode="caller")
    operator = Operator(operator_api, route)
    with LeaseWatch(route.pk) as watch:
        operator.start(listeners=False)
        assert operator.status()["node"] == "alpha"
        player.wait_for_media(30, "media before the pause")

        paused_at = time.monotonic()
        alpha.signal(signal.SIGSTOP)
        try:
            at_pause = player.received()
            player.wait_for_media(MOVES_WITHIN_S + 30, "media from bravo", since=at_pause)
            took_move = time.monotonic() - paused_at
            print(f"SIGSTOP: bravo relays {took_move:.1f}s after alpha was paused")
            assert node_of(lease_owner(route) or "") == "bravo"
        finally:
            alpha.signal(signal.SIGCONT)
        lost = wait_for(
            lambda: any("lost its lease" in e.message for e in events(route, EventKind.ERROR)),
            30,
            "the resumed copy to notice it lost its lease",
        )
        print(f"SIGCONT: alpha's copy reported its lost lease {lost:.2f}s after it resumed")
        wait_for(lambda: len(events(route, EventKind.STOPPED)) == 1, 10, "alpha's copy to stop")
        # Past the time a stale message in alpha's queue may wait for the lease (6.5 s): nothing
        # starts on alpha, and bravo's copy goes on.
        at_resume = player.received()
        time.sleep(8)
        player.wait_for_media(30, "media from bravo after alpha resumed", since=at_resume)

    watch.assert_one_pipeline_at_a_time()
    watch.assert_state_follows_lease()
    assert [node_of(owner) for owner in watch.owners()] == ["alpha", "bravo"]
    assert lost <= FENCED_WITHIN_S
    assert alpha.running(), "only the pipeline stops, not the worker"
    assert "ended: lease lost" in alpha.process.output()
    assert [e.message for e in events(route, EventKind.STOPPED)] == ['stopped on node "alpha"']
    assert [e.message for e in events(route, EventKind.STARTED)] == [
        'started on node "alpha"',
        'started on node "bravo"',
    ]
    # Once bravo ran, the state said so throughout: the fenced copy left bravo's state alone.
    taken = next(i for i, s in enumerate(watch.samples) if (s.state, s.node) == ("running", "bravo"))
    after = {(s.state, s.node) for s in watch.samples[taken:]}
    assert after == {("running", "bravo")}, sorted(after)
    assert operator.status()["node"] == "bravo"
