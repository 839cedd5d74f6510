"""HLS and recording outputs of a running route, as players and operators reach them: the web app
serves the live playlist and segments, the API and the UI list recordings and hand them out."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from routes.choices import Role
from routes.models import Input, Output, Route
from routes.roles import grant_role
from routes.runner import RouteRunner, RunnerTiming
from routes.runtime import route_state
from tests.peers.media import decode_problems, ffmpeg_publish, ffmpeg_srt_url, free_udp_port, make_ts, wait_until
from tests.support.processes import RunningProcess, stop_process_tree

pytestmark = pytest.mark.django_db(transaction=True)
FAST = RunnerTiming(lease_ttl_s=2.0, renew_every_s=0.5, poll_every_s=0.05, publish_every_s=0.2, acquire_wait_s=0.5)


@pytest.fixture
def running(tmp_path: Path, settings: object) -> Iterator[tuple[Route, Output, Output]]:
    """A route with an SRT input, an HLS output and a recording, run by a runner in this process
    and fed by ffmpeg in real time."""
    settings.DATA_DIR = tmp_path / "data"  # type: ignore[attr-defined]
    route = Route.objects.create(name="news", enabled=True)
    port = free_udp_port()
    Input.objects.create(route=route, name="cam", priority=1, protocol="srt", mode="listener", port=port)
    hls = Output.objects.create(route=route, name="web", protocol="hls", segment_s=1, playlist_size=3)
    recording = Output.objects.create(route=route, name="archive", protocol="file", rotate_s=10)
    stop = threading.Event()
    runner = threading.Thread(target=RouteRunner(route.pk, "alpha", stop, FAST).run)
    runner.start()
    encoder: RunningProcess | None = None
    try:
        wait_until(lambda: route_state(route.pk).state == "running", 15, "the route to run")
        source = make_ts(tmp_path / "source.ts", seconds=6)
        encoder = ffmpeg_publish(source, ffmpeg_srt_url("127.0.0.1", port), loop=True)
        wait_until(lambda: len(list(hls.media_directory().glob("*.ts"))) >= 3, 30, "HLS segments")  # type: ignore[union-attr]
        yield route, hls, recording
    finally:
        if encoder is not None:
            stop_process_tree(encoder)
        stop.set()
        runner.join(timeout=15)


@pytest.fixture
def viewer(django_user_model: type[AbstractUser]) -> Client:
    user = django_user_model.objects.create_user(username="vera", password="a-long-password")
    grant_role(user, Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def test_the_live_playlist_and_its_segments_are_served_to_any_player(
    running: tuple[Route, Output, Output], tmp_path: Path, live_server: object
) -> None:
    _route, hls, _recording = running
    playlist = Client().get(f"/hls/{hls.pk}/index.m3u8")
    assert playlist.status_code == 200
    assert playlist["Content-Type"] == "application/vnd.apple.mpegurl"
    assert playlist["Cache-Control"] == "no-cache"
    lines = b"".join(playlist.streaming_content).decode().splitlines()
    segments = [line for line in lines if line.endswith(".ts")]
    assert lines[0] == "#EXTM3U"
    assert 1 <= len(segments) <= 3
    segment = Client().get(f"/hls/{hls.pk}/{segments[-1]}")
    assert segment["Content-Type"] == "video/mp2t"
    path = tmp_path / "segment.ts"
    path.write_bytes(b"".join(segment.streaming_content))
    assert decode_problems(path) == []

    # A real player over HTTP: ffprobe reads the playlist the web app serves.
    url = f"{live_server.url}/hls/{hls.pk}/index.m3u8"  # type: ignore[attr-defined]
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert set(probe.stdout.split()) == {"h264", "aac"}


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "index.m3u8.bak", ".hidden.ts", "nope.ts", "%2e%2e%2fsecret.ts", "segment.mp4"]
)
def test_only_files_the_output_wrote_are_served(running: tuple[Route, Output, Output], name: str) -> None:
    _route, hls, _recording = running
    assert Client().get(f"/hls/{hls.pk}/{name}").status_code == 404


def test_recordings_are_listed_and_downloaded_through_the_api_and_the_ui(
    running: tuple[Route, Output, Output],
    api_client_for: Callable[[Role | None], APIClient],
    viewer: Client,
    tmp_path: Path,
) -> None:
    route, _hls, recording = running
    api = api_client_for(Role.VIEWER)
    wait_until(lambda: api.get(f"/api/v1/outputs/{recording.pk}/recordings/").json(), 20, "a recording")
    files = api.get(f"/api/v1/outputs/{recording.pk}/recordings/").json()
    assert files[0]["name"].startswith("archive-")
    assert files[0]["size"] > 0
    download = api.get(files[0]["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    path = tmp_path / files[0]["name"]
    path.write_bytes(b"".join(download.streaming_content))
    assert decode_problems(path) == []

    assert api.get(f"/api/v1/outputs/{recording.pk}/recordings/../../secret.ts").status_code == 404
    assert api_client_for(None).get(f"/api/v1/outputs/{recording.pk}/recordings/").status_code == 401

    page = viewer.get(f"/routes/{route.pk}/").content.decode()
    assert f"/outputs/{recording.pk}/recordings/{files[0]['name']}" in page
    assert viewer.get(f"/outputs/{recording.pk}/recordings/{files[0]['name']}").status_code == 200
    assert Client().get(f"/outputs/{recording.pk}/recordings/{files[0]['name']}").status_code == 302


def test_an_hls_output_has_a_player_page_and_its_url_in_the_api(
    running: tuple[Route, Output, Output], viewer: Client, api_client_for: Callable[[Role | None], APIClient]
) -> None:
    _route, hls, _recording = running
    page = viewer.get(f"/outputs/{hls.pk}/player/").content.decode()
    assert f"/hls/{hls.pk}/index.m3u8" in page
    assert "<video" in page
    output = api_client_for(Role.VIEWER).get(f"/api/v1/outputs/{hls.pk}/").json()
    assert output["player_url"].endswith(f"/hls/{hls.pk}/index.m3u8")
    assert output["segment_s"] == 1


@pytest.fixture
def ladder(tmp_path: Path, settings: object) -> Output:
    """An HLS output's directory as a ladder leaves it: a master playlist and one folder per rendition."""
    settings.DATA_DIR = tmp_path / "data"  # type: ignore[attr-defined]
    output = Output.objects.create(route=Route.objects.create(name="abr"), name="web", protocol="hls")
    top = output.media_directory()
    assert top is not None
    (top / "360p").mkdir(parents=True)
    (top / "index.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n360p/index.m3u8\n")
    (top / "360p" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nsegment-00001.ts\n")
    (top / "360p" / "segment-00001.ts").write_bytes(b"G" + bytes(187))
    # What a crafted path would be after: files beside and above the output's directory.
    (top.parent / "secret.ts").write_bytes(b"not yours")
    (tmp_path / "data" / "index.m3u8").write_text("not yours either")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.m3u8").write_text("outside")
    (top / "escape").symlink_to(outside)
    return output


def test_a_renditions_playlist_and_segments_are_served_where_the_master_playlist_points(ladder: Output) -> None:
    base = f"/hls/{ladder.pk}/index.m3u8"
    master = Client().get(base)
    assert master.status_code == 200
    variant = [line for line in b"".join(master.streaming_content).decode().splitlines() if line.endswith(".m3u8")]

    playlist = Client().get(urljoin(base, variant[0]))

    assert playlist.status_code == 200
    assert playlist["Content-Type"] == "application/vnd.apple.mpegurl"
    assert playlist["Cache-Control"] == "no-cache"
    segment_name = b"".join(playlist.streaming_content).decode().splitlines()[-1]
    segment = Client().get(urljoin(urljoin(base, variant[0]), segment_name))
    assert segment.status_code == 200
    assert segment["Content-Type"] == "video/mp2t"
    assert b"".join(segment.streaming_content) == b"G" + bytes(187)


@pytest.mark.parametrize(
    "path",
    [
        "../secret.ts", "%2e%2e/secret.ts", "..%2fsecret.ts", "..%2f..%2findex.m3u8", "360p/../index.m3u8",
        "360p/..%2f..%2fsecret.ts", ".360p/index.m3u8", "360P/index.m3u8", "-360p/index.m3u8", "360_p/index.m3u8",
        "360p/.hidden.ts", "360p/segment-00001.mp4", "nope/index.m3u8", "escape/index.m3u8", "360p%00/index.m3u8",
        f"{'a' * 65}/index.m3u8",
    ],
)  # fmt: skip
def test_nothing_outside_a_renditions_folder_is_served(ladder: Output, path: str) -> None:
    assert Client().get(f"/hls/{ladder.pk}/{path}").status_code == 404
