"""Transcoding as an operator runs it: a real worker runs a route that re-encodes its live input to
640x360 beside a route that passes its input through, both at once, each with its own encoder and
player. The scaled picture arrives at its size, the status names the encoder ``auto`` chose on this
machine, the passed-through stream keeps its continuity, and stopping one route leaves the other.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest
from rest_framework.test import APIClient

from media_engine.transcoder.encoders import available, choose, probe
from routes.models import Output, TranscodeProfile
from tests.orchestration.cluster import Cluster, Operator, srt_route, wait_for
from tests.peers import ts_check
from tests.peers.media import ffmpeg_live_encoder, ffmpeg_srt_url, free_udp_port, slt_url
from tests.peers.receiver import TimedReceiver

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds of the live encoders' stream (about 0.9 Mbit/s in, 0.5 Mbit/s scaled) a check looks at.
MEDIA_BYTES = 200_000
# A transcoder opens its decoder and encoder on the first keyframe: a few seconds on a busy machine.
FIRST_MEDIA_S = 45


def pictures(data: bytes, path: Path) -> list[tuple[int, int]]:
    """The size of every picture a decoder gets out of what a player received."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return [(frame.width, frame.height) for frame in container.decode(video=0)]


def test_a_transcoding_route_and_a_passthrough_route_run_side_by_side(
    cluster: Cluster, operator_api: APIClient, tmp_path: Path
) -> None:
    cluster.worker("alpha")
    kinds = available(probe())
    chosen = choose("h264", "auto", kinds)
    expected_encoder = f"{chosen.codec_name} ({chosen.kind})"
    if kinds == ["software"]:
        assert expected_encoder == "libx264 (software)", "without a GPU, auto encodes in software"

    ports = {name: (free_udp_port(), free_udp_port()) for name in ("scaled", "relayed")}
    scaled_route = srt_route("scaled", *ports["scaled"])
    sd = TranscodeProfile.objects.create(name="360p", width=640, height=360, video_bitrate_kbps=500, gop=25)
    output = Output.objects.get(route=scaled_route)
    output.profile = sd
    output.save()
    relayed_route = srt_route("relayed", *ports["relayed"])
    scaled, relayed = Operator(operator_api, scaled_route), Operator(operator_api, relayed_route)

    for operator in (scaled, relayed):
        took = operator.start()
        print(f'route "{operator.route.name}" running with its listeners bound after {took:.2f}s')
    for tsid, name in enumerate(("scaled", "relayed"), start=1):
        url = ffmpeg_srt_url("127.0.0.1", ports[name][0])
        cluster.processes.append(ffmpeg_live_encoder(url, tsid=tsid, tone_hz=1000 if tsid == 1 else 440))

    with (
        TimedReceiver(slt_url("127.0.0.1", ports["scaled"][1]), name="scaled player") as scaled_player,
        TimedReceiver(slt_url("127.0.0.1", ports["relayed"][1]), name="relayed player") as relayed_player,
    ):
        scaled_player.wait_bytes(MEDIA_BYTES, FIRST_MEDIA_S)
        relayed_player.wait_bytes(MEDIA_BYTES, FIRST_MEDIA_S)
        sizes = pictures(scaled_player.data, tmp_path / "scaled.ts")
        assert len(sizes) > 25, "more than a second of pictures"
        assert set(sizes) == {(640, 360)}, sorted(set(sizes))

        def transcode() -> dict | None:
            return scaled.status()["outputs"][0]["transcode"]

        wait_for(lambda: (transcode() or {}).get("frames", 0) > 0, 15, "the transcoder's figures in the status")
        figures = transcode()
        assert figures is not None
        print(f"scaled output: {figures}")
        assert figures["encoder"] == expected_encoder
        assert figures["fps"] > 0
        assert relayed.status()["outputs"][0]["transcode"] is None, "a passthrough output has no transcoder"

        relayed_packets = ts_check.parse(relayed_player.data, allow_partial_tail=True)
        assert ts_check.continuity_errors(relayed_packets) == []

        # Stopping the transcoding route leaves the other one relaying, uninterrupted.
        scaled.stop()
        stopped_at, offset = time.monotonic(), relayed_player.received
        relayed_player.wait_bytes(offset + MEDIA_BYTES, 30)
        assert relayed.status()["state"] == "running"
        # The relayed stream flows steadily; a pipeline held up by the other one's teardown would
        # show as seconds of silence. Half of the bound is slack for a busy 2-core machine.
        assert relayed_player.largest_gap(since=stopped_at, until=time.monotonic()) < 2.0
        relayed_packets = ts_check.parse(relayed_player.data, allow_partial_tail=True)
        assert ts_check.continuity_errors(relayed_packets) == []
        assert scaled.status()["state"] != "running"
