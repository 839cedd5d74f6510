"""A real worker probes this machine's video encoders when it starts and stores what it found on its
node; routes that ask for an encoder the node lacks are not sent to it."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from media_engine.transcoder.encoders import HARDWARE, LABELS, available, probe
from routes.models import Node, Output, RouteLease, TranscodeProfile
from routes.placement import describe_encoders
from tests.orchestration.cluster import Cluster, Operator, srt_route
from tests.peers.media import free_udp_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_stores_the_encoders_it_found_and_why_the_others_are_missing(
    cluster: Cluster, operator_api: APIClient
) -> None:
    # What this machine has, probed here the way the worker probes: a CI runner without a GPU has
    # software only, a GPU host more; either way each missing kind comes with its reason.
    expected = available(probe())
    worker = cluster.worker("alpha")

    node = Node.objects.get(name="alpha")
    assert node.capabilities == expected
    assert "software" in node.capabilities
    missing = [kind for kind in HARDWARE if kind not in node.capabilities]
    assert sorted(node.encoder_problems) == sorted(missing)
    assert all(node.encoder_problems[kind] for kind in missing), node.encoder_problems
    for kind in missing:
        assert f"encoder: {node.encoder_problems[kind]}" in worker.process.output()
    shown = operator_api.get(f"/api/v1/nodes/{node.pk}/").json()
    assert (shown["capabilities"], shown["encoder_problems"]) == (node.capabilities, node.encoder_problems)

    if not missing:
        pytest.skip("this machine has every hardware encoder: no route can ask for one it lacks")
    lacking = missing[0]
    route = srt_route("news", free_udp_port(), free_udp_port())
    hd = TranscodeProfile.objects.create(name="hd-gpu", encoder=lacking, video_bitrate_kbps=3000)
    Output.objects.filter(route=route).update(profile=hd)

    status = Operator(operator_api, route).post("start")

    assert status["reason"] == (
        f'needs the {LABELS[lacking]} encoder (profile "hd-gpu" on output "news-output"); no online node has it '
        f"(online: alpha: {describe_encoders(expected)})"
    )
    time.sleep(2)  # a pipeline sent to the worker would hold the lease within this
    assert not RouteLease.held().filter(route=route).exists()
    assert Operator(operator_api, route).status()["state"] == "idle"
