"""What a route's rows become for the engine: the settings each kind reads, and nothing empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_engine.config import TranscodeSettings
from media_engine.inputs import build_input
from media_engine.outputs import build_output
from routes.engine_config import relay_config, transcode_settings
from routes.models import Input, Output, Route, TranscodeProfile
from routes.models.endpoints import VARIANT_NAME

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


def test_an_outputs_profile_and_ladder_become_renditions_in_bits_per_second(settings: object, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path  # type: ignore[attr-defined]
    route = Route.objects.create(name="news")
    Input.objects.create(route=route, name="cam", priority=1, protocol="srt", port=9001)
    top = TranscodeProfile.objects.create(
        name="1080p50", encoder="vaapi", width=1920, height=1080, fps=50, video_bitrate_kbps=6000, gop=100,
        preset="fast", audio_codec="aac", audio_bitrate_kbps=128,
    )  # fmt: skip
    low = TranscodeProfile.objects.create(name="Low 360p_25", height=360, video_bitrate_kbps=800, fps=25)
    mid = TranscodeProfile.objects.create(name="720p", video_codec="hevc", height=720, video_bitrate_kbps=3000)
    web = Output.objects.create(route=route, name="web", protocol="hls", profile=top)
    web.ladder.set([low, mid])
    Output.objects.create(route=route, name="plant", protocol="udp", host="239.2.2.2", port=5001, profile=mid)
    copy = TranscodeProfile.objects.create(name="copy", video_codec="copy")
    Output.objects.create(route=route, name="relay", protocol="udp", host="239.2.2.3", port=5002, profile=copy)
    Output.objects.create(route=route, name="plain", protocol="udp", host="239.2.2.4", port=5003)
    # Refused by validation (re-encoding only the audio is not supported yet); passed through if present.
    aac = TranscodeProfile.objects.create(name="aac", video_codec="copy", audio_codec="aac", audio_bitrate_kbps=96)
    Output.objects.create(route=route, name="radio", protocol="udp", host="239.2.2.5", port=5004, profile=aac)

    outputs = {o.name: o for o in relay_config(Route.objects.get(pk=route.pk)).outputs}

    assert outputs["web"].transcode == (
        TranscodeSettings(
            name="1080p50",
            video_codec="h264",
            encoder="vaapi",
            width=1920,
            height=1080,
            fps=50,
            video_bitrate_bps=6_000_000,
            gop=100,
            preset="fast",
            audio_codec="aac",
            audio_bitrate_bps=128_000,
        ),
        TranscodeSettings(name="720p", video_codec="hevc", height=720, video_bitrate_bps=3_000_000),
        TranscodeSettings(name="low-360p-25", height=360, fps=25, video_bitrate_bps=800_000),
    ), "the main profile first, then the ladder from the highest bitrate down"
    assert outputs["plant"].transcode == (outputs["web"].transcode[1],), "one rendition outside HLS"
    for passthrough in ("relay", "plain", "radio"):
        assert outputs[passthrough].transcode == (), passthrough


def test_rendition_names_are_folder_names_unique_within_the_output(db: None) -> None:
    route = Route.objects.create(name="news")
    main = TranscodeProfile.objects.create(name="HD", video_bitrate_kbps=3000)
    same = TranscodeProfile.objects.create(name="hd!", video_bitrate_kbps=2000)
    unnamed = TranscodeProfile.objects.create(name="日本", video_bitrate_kbps=1000)
    web = Output.objects.create(route=route, name="web", protocol="hls", profile=main)
    web.ladder.set([same, unnamed])

    names = [rendition.name for rendition in transcode_settings(Output.objects.get(pk=web.pk))]

    assert names == ["hd", f"hd-{same.pk}", f"profile-{unnamed.pk}"]
    assert all(VARIANT_NAME.fullmatch(name) for name in names)
