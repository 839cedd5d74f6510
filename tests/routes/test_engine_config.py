"""What a route's rows become for the engine: the settings each kind reads, and nothing empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_engine.inputs import build_input
from media_engine.outputs import build_output
from routes.engine_config import relay_config
from routes.models import Input, Output, Route

pytestmark = pytest.mark.django_db


def test_each_kind_gets_its_own_settings_and_builds(settings: object, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path  # type: ignore[attr-defined]
    route = Route.objects.create(name="news", slate="pattern", failback=True, holdoff_s=7, input_timeout_ms=400)
    Input.objects.create(
        route=route, name="feed", priority=1, protocol="udp", host="239.1.1.1", port=5000,
        interface="127.0.0.1", source_address="10.0.0.9", timeout_ms=250, min_bitrate_kbps=500,
    )  # fmt: skip
    Input.objects.create(route=route, name="studio", priority=2, protocol="rtmp", port=1935, stream_key="s3cret-key")
    Output.objects.create(route=route, name="plant", protocol="udp", host="239.2.2.2", port=5001, ttl=4)
    Output.objects.create(route=route, name="youtube", protocol="rtmp", url="rtmp://a.example/live2", stream_key="k")
    web = Output.objects.create(route=route, name="web", protocol="hls", segment_s=2, playlist_size=5)
    archive = Output.objects.create(route=route, name="archive", protocol="file", url="/srv/rec", keep_files=24)

    config = relay_config(Route.objects.prefetch_related("inputs", "outputs").get(pk=route.pk))

    feed, studio = config.inputs
    assert (feed.host, feed.port, feed.options) == ("239.1.1.1", 5000, {"interface": "127.0.0.1", "source": "10.0.0.9"})
    assert (feed.health.timeout_ms, feed.health.min_bitrate_bps) == (250, 500_000)
    assert studio.options == {"app": "live", "stream_key": "s3cret-key"}
    assert studio.health.timeout_ms == 400, "the route's default timeout"
    outputs = {o.name: o for o in config.outputs}
    assert outputs["plant"].options == {"ttl": "4"}
    assert outputs["youtube"].options == {"stream_key": "k"}
    assert outputs["web"].url == str(tmp_path / "hls" / str(web.pk))
    assert outputs["web"].options == {"segment_s": "2", "playlist_size": "5"}
    assert outputs["archive"].url == "/srv/rec"
    assert outputs["archive"].options == {"rotate_s": "3600", "keep_files": "24", "keep_hours": "0"}
    assert (config.failover.failback, config.failover.holdoff_s) == (True, 7)
    assert config.slate is not None
    assert config.slate.protocol == "slate"

    # Every kind the engine builds from these settings accepts them, without opening anything.
    for endpoint in config.inputs:
        build_input(endpoint)
    for endpoint in (outputs["plant"], outputs["youtube"], outputs["web"]):
        build_output(endpoint)
    assert archive.media_directory() == Path("/srv/rec")
