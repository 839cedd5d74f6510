"""Where routes run: live nodes only, pinned routes stay put, load spreads, and the reason is shown."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from routes.choices import NodeState
from routes.models import Node, Output, Route, TranscodeProfile
from routes.placement import place


def node(name: str, *, age_s: float = 0, max_routes: int = 64, capabilities: tuple[str, ...] = ("software",)) -> Node:
    return Node.objects.create(
        name=name,
        state=NodeState.ONLINE,
        last_heartbeat=timezone.now() - timedelta(seconds=age_s),
        max_routes=max_routes,
        capabilities=list(capabilities),
    )


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    return client


def queued_route_ids(broker: redis.Redis, queue: str) -> list[int]:
    """The route ids of the pipeline messages waiting in a queue (Celery's JSON message body: args first)."""
    bodies = [json.loads(base64.b64decode(json.loads(raw)["body"])) for raw in broker.lrange(queue, 0, -1)]
    return [args[0] for args, _kwargs, _embed in bodies]


def test_no_live_node_is_explained_on_the_route(admin_api: APIClient, route: Route) -> None:
    node("gone", age_s=60)
    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()
    assert status["enabled"] is True
    assert status["reason"] == "no worker node is online"
    assert admin_api.get(f"/api/v1/routes/{route.pk}/").json()["placement_problem"] == "no worker node is online"


def test_start_sends_the_pipeline_to_the_nodes_own_queue(
    admin_api: APIClient, route: Route, broker: redis.Redis
) -> None:
    node("edge-1")
    admin_api.post(f"/api/v1/routes/{route.pk}/start/")
    route.refresh_from_db()
    assert route.node.name == "edge-1"
    assert route.placement_problem == ""
    assert queued_route_ids(broker, "node.edge-1") == [route.pk]


def test_a_pinned_route_waits_for_its_node(admin_api: APIClient, route: Route) -> None:
    node("edge-1")
    pinned = node("studio", age_s=60)
    response = admin_api.patch(f"/api/v1/routes/{route.pk}/", {"pinned_node": pinned.pk}, format="json")
    assert response.status_code == 200, response.json()
    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()
    assert status["reason"] == 'pinned to node "studio", which is not online'


def test_new_routes_go_to_the_least_loaded_live_node(db: None) -> None:
    busy, idle = node("busy"), node("idle")
    for index in range(3):
        Route.objects.create(name=f"r{index}", enabled=True, node=busy)
    assert place(Route.objects.create(name="new")).node == idle


def test_a_placed_route_stays_on_its_live_node(db: None) -> None:
    busy = node("busy")
    node("idle")
    for index in range(3):
        Route.objects.create(name=f"r{index}", enabled=True, node=busy)
    assert place(Route.objects.get(name="r0")).node == busy, "encoders send to a fixed address"


def test_full_nodes_take_no_more(db: None) -> None:
    full = node("full", max_routes=1)
    Route.objects.create(name="first", enabled=True, node=full)
    placement = place(Route.objects.create(name="second"))
    assert placement.node is None
    assert "maximum number of routes" in placement.problem


# Encoders: a route whose outputs name an encoder runs only where a worker found it.

VAAPI_NEEDED = 'needs the VAAPI encoder (profile "hd-vaapi" on output "cdn")'


def profile(name: str, encoder: str, **fields: object) -> TranscodeProfile:
    item = TranscodeProfile(name=name, encoder=encoder, video_bitrate_kbps=3000, **fields)
    item.full_clean()
    item.save()
    return item


def transcoding_route(name: str, encoder: str, *, profile_name: str = "hd-vaapi", output: str = "cdn") -> Route:
    route = Route.objects.create(name=name)
    Output.objects.create(
        route=route, name=output, protocol="udp", host="198.51.100.10", port=5000,
        profile=TranscodeProfile.objects.filter(name=profile_name).first() or profile(profile_name, encoder),
    )  # fmt: skip
    return route


def test_a_route_needing_an_encoder_no_node_has_says_so_and_does_not_run(
    admin_api: APIClient, broker: redis.Redis
) -> None:
    node("worker-1")
    route = transcoding_route("news", "vaapi")
    expected = f"{VAAPI_NEEDED}; no online node has it (online: worker-1: software (x264/x265))"

    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()

    assert (status["enabled"], status["state"], status["reason"]) == (True, "idle", expected)
    assert admin_api.get(f"/api/v1/routes/{route.pk}/").json()["placement_problem"] == expected
    assert queued_route_ids(broker, "node.worker-1") == [], "nothing is sent to a node that cannot encode it"
    route.refresh_from_db()
    assert route.node is None


def test_a_route_needing_an_encoder_goes_to_the_node_that_has_it(admin_api: APIClient, broker: redis.Redis) -> None:
    node("worker-1")
    gpu = node("worker-2", capabilities=("vaapi", "software"))
    for index in range(3):  # worker-1 is less loaded: only the encoder sends the route to worker-2
        Route.objects.create(name=f"busy-{index}", enabled=True, node=gpu)
    route = transcoding_route("news", "vaapi")

    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()

    assert status["reason"] == ""
    route.refresh_from_db()
    assert route.node == gpu
    assert queued_route_ids(broker, "node.worker-2") == [route.pk]
    assert queued_route_ids(broker, "node.worker-1") == []


@pytest.mark.parametrize("encoder", ["auto", "software"])
def test_auto_and_software_run_on_any_node(db: None, encoder: str) -> None:
    plain = node("a-plain")
    node("b-gpu", capabilities=("vaapi", "software"))

    assert place(transcoding_route("news", encoder, profile_name=f"hd-{encoder}")).node == plain


def test_a_route_pinned_to_a_node_without_the_encoder_is_refused(admin_api: APIClient, broker: redis.Redis) -> None:
    plain = node("worker-1")
    node("worker-2", capabilities=("vaapi", "software"))
    route = transcoding_route("news", "vaapi")
    Route.objects.filter(pk=route.pk).update(pinned_node=plain)

    status = admin_api.post(f"/api/v1/routes/{route.pk}/start/").json()

    assert status["reason"] == (
        f'{VAAPI_NEEDED}, but it is pinned to node "worker-1", which has only software (x264/x265)'
    )
    assert queued_route_ids(broker, "node.worker-1") == []
    assert queued_route_ids(broker, "node.worker-2") == []


def test_a_route_leaves_its_node_once_an_output_needs_an_encoder_it_lacks(db: None) -> None:
    plain = node("a-plain")
    gpu = node("b-gpu", capabilities=("nvenc", "software"))
    route = transcoding_route("news", "nvenc", profile_name="hd-nvenc")
    Route.objects.filter(pk=route.pk).update(node=plain)

    assert place(Route.objects.get(pk=route.pk)).node == gpu


def test_every_encoder_a_ladder_and_its_outputs_need_is_named(db: None) -> None:
    node("worker-1")
    node("worker-2", capabilities=("qsv", "software"))
    route = transcoding_route("news", "vaapi")
    web = Output.objects.create(route=route, name="web", protocol="hls", profile=profile("1080p", "auto"))
    web.ladder.set([profile("360p", "software", height=360), profile("720p", "nvenc", height=720)])
    Output.objects.create(
        route=route, name="spare", protocol="udp", host="198.51.100.11", port=5001, enabled=False,
        profile=profile("hd-qsv", "qsv"),
    )  # fmt: skip

    placement = place(Route.objects.get(pk=route.pk))

    assert placement.node is None
    assert placement.problem == (
        'needs the VAAPI, NVIDIA NVENC and software (x264/x265) encoders (profile "hd-vaapi" on output "cdn"; '
        'profile "720p" on output "web"; profile "360p" on output "web"); no online node has them all '
        "(online: worker-1: software (x264/x265); worker-2: Intel QSV, software (x264/x265))"
    ), "a disabled output asks for nothing"


def test_a_full_node_with_the_encoder_is_named_as_full(db: None) -> None:
    gpu = node("gpu", max_routes=1, capabilities=("vaapi", "software"))
    node("plain")
    Route.objects.create(name="first", enabled=True, node=gpu)

    placement = place(transcoding_route("news", "vaapi"))

    assert placement.node is None
    assert placement.problem == "every online node with the VAAPI encoder already runs its maximum number of routes"
