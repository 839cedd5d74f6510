"""Start and stop through the API, as an operator sees them: a real worker, encoder and player."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from routes.choices import EventKind
from tests.orchestration.cluster import Cluster, Operator, events, srt_route, udp_port_free, wait_for
from tests.peers.media import free_udp_port, probe

pytestmark = pytest.mark.django_db(transaction=True)

# The issue promises that start and stop take effect within 1 s; a loaded 2-core CI machine gets
# another second of slack.
TAKES_EFFECT_S = 1.0 + 1.0
# libsrt frees a closed listener's UDP socket in its garbage collector: 3 s after the close plus up
# to two 1 s collector rounds. Past this the port is taken for good.
PORT_GIVEN_UP_S = 15


def test_start_and_stop_through_the_api_take_effect_within_a_second(
    cluster: Cluster, operator_api: APIClient, stream_ts: Path
) -> None:
    cluster.worker("alpha")
    ingest, play = free_udp_port(), free_udp_port()
    route = srt_route("news", ingest, play)
    operator = Operator(operator_api, route)

    took_start = operator.start()
    print(f"start: running with listeners bound after {took_start:.2f}s")
    assert took_start <= TAKES_EFFECT_S
    assert not udp_port_free(ingest)
    assert not udp_port_free(play)
    assert operator.status()["node"] == "alpha"

    cluster.encoder(stream_ts, ingest)
    player = cluster.player(play)
    took_media = player.wait_for_media(30, "the player to receive media")
    print(f"start: the player received media {took_media:.2f}s after the encoder and player started")
    # The worker publishes its state once a second: the status catches up within that.
    wait_for(
        lambda: [operator.status()[side][0]["state"] for side in ("inputs", "outputs")] == ["connected"] * 2,
        10,
        "the status to show the encoder and the player connected",
    )
    # The first state after the encoder connects may predate its first bytes: the next one has them.
    wait_for(lambda: operator.status()["inputs"][0]["stats"]["bytes"] > 0, 5, "the input's byte count")

    took_stop = operator.stop()
    print("stop: " + ", ".join(f"{what} after {seconds:.2f}s" for what, seconds in took_stop.items()))
    assert max(took_stop.values()) <= TAKES_EFFECT_S, took_stop
    assert operator.status()["state"] == "stopped"

    # Started again at once, on ports the stopped pipeline had a moment ago: the peers come back.
    took_restart = operator.start()
    took_media = player.wait_for_media(30, "the player to receive media after the restart")
    print(f"restart: running after {took_restart:.2f}s, media at the player {took_media:.2f}s later")
    assert took_restart <= TAKES_EFFECT_S

    stopped_at = time.monotonic()
    took_stop = operator.stop()
    took_ports = wait_for(lambda: udp_port_free(ingest) and udp_port_free(play), PORT_GIVEN_UP_S, "the ports")
    print(
        "stop again: " + ", ".join(f"{what} after {seconds:.2f}s" for what, seconds in took_stop.items()),
        f"both listener ports free after {time.monotonic() - stopped_at:.2f}s",
        sep=", ",
    )
    assert max(took_stop.values()) <= TAKES_EFFECT_S, took_stop
    assert [e.message for e in events(route, EventKind.STOPPED)] == ['stopped on node "alpha"'] * 2
    assert {s["codec_type"] for s in probe(player.target)["streams"]} == {"video", "audio"}
    # The media stops at once (above); the operating system's UDP port follows when libsrt's
    # garbage collector drops the closed listener, a few seconds later, which wait_for bounds.
    assert took_ports <= PORT_GIVEN_UP_S
