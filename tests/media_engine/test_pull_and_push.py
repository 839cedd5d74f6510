"""Pull inputs (file, HTTP-TS, HLS) and the RTMP push output, against real peers: ffmpeg serving TS
over HTTP, ffmpeg writing a live HLS that Python's http.server serves, and ffmpeg as an RTMP server.

The pull inputs feed an SRT output directly (connected first), so a recording starts on the
stream's first packet; the RTMP output runs in a relay, as it starts on a keyframe by itself.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import pytest

from media_engine.config import EndpointConfig
from media_engine.inputs import build_input
from media_engine.inputs.base import Input
from media_engine.inputs.pull import TsAligner
from media_engine.outputs import build_output
from media_engine.outputs.base import Output
from media_engine.relay import Relay
from media_engine.remux import Timeline
from media_engine.rtmp.client import RtmpTarget
from media_engine.rtmp.ts_to_flv import audio_specific_config
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import (
    decode_problems,
    duration_s,
    finish,
    free_udp_port,
    make_ts,
    probe,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.support.processes import (
    PYTHON,
    RunningProcess,
    environment,
    free_port,
    start_process,
    stop_process_tree,
    wait_for_url,
)

PACKET = 188


def endpoint(name: str, protocol: str, url: str, **options: str) -> EndpointConfig:
    return EndpointConfig(id=name, name=name, protocol=protocol, url=url, options=options)


# peers


def ffmpeg_http_ts_server(source: Path, port: int) -> RunningProcess:
    """Serves one client a TS over HTTP in real time, then exits."""
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re", "-i", str(source), "-c", "copy",
         "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/live.ts"],
        env=environment(),
        name="ffmpeg http server",
    )  # fmt: skip


def ffmpeg_live_hls(directory: Path) -> RunningProcess:
    """A live encoder writing one-second HLS segments in two variants (320x240 and 160x120, each
    with its audio) and a master playlist naming both; the media playlists keep six segments."""
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-re", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
         "-map", "0:v", "-map", "0:v", "-map", "1:a", "-map", "1:a",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         "-b:v:0", "800k", "-s:v:1", "160x120", "-b:v:1", "200k", "-c:a", "aac", "-b:a", "64k",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
         "-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", "master.m3u8",
         str(directory / "live_%v.m3u8")],
        env=environment(),
        name="ffmpeg live hls",
    )  # fmt: skip


def http_server(directory: Path, port: int) -> RunningProcess:
    return start_process(
        [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        env=environment(),
        name="http.server",
    )


def ffmpeg_rtmp_server(port: int, target: Path) -> RunningProcess:
    """Takes one publisher on rtmp://127.0.0.1:port/live/key and records what it sends; exits when
    the publisher goes."""
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-y", "-listen", "1",
         "-i", f"rtmp://127.0.0.1:{port}/live/key", "-c", "copy", str(target)],
        env=environment(),
        name="ffmpeg rtmp server",
    )  # fmt: skip


def make_ts_at(path: Path, seconds: int, offset_s: int) -> Path:
    """Like make_ts, with timestamps starting ``offset_s`` later: another encoder's clock."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "smptebars=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "1M",
         "-c:a", "aac", "-output_ts_offset", str(offset_s), "-f", "mpegts", str(path)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def packets(path: Path, stream: str) -> list[dict]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts,dts,flags",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)["packets"]


def streams(path: Path) -> list[dict]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)["streams"]


def codecs(path: Path) -> set[str]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {stream["codec_name"] for stream in json.loads(result.stdout)["streams"]}


# a pull input into an SRT output, recorded by srt-live-transmit


@contextmanager
def into_srt(source: EndpointConfig, received: Path, processes: list[RunningProcess]) -> Iterator[tuple[Input, Output]]:
    """``source`` feeding an SRT caller output whose listener records to ``received``. The output is
    connected before the input starts, so the recording holds the stream from its first byte."""
    port = free_udp_port()
    recorder = slt_to_file(slt_url("", port, mode="listener", latency="120"), received)
    processes.append(recorder)
    output = build_output(srt_endpoint("out", mode="caller", host="127.0.0.1", port=port))
    output.start()
    pull = None
    try:
        wait_until(lambda: output.stats.state == "connected", 15, "the SRT output to connect")
        pull = build_input(source)
        pull.start(output.offer)
        yield pull, output
    finally:
        if pull is not None:
            pull.stop()
        # The recorder takes what SRT still carries, then stops; only then does the output close.
        finish(recorder, settle_s=2)
        output.stop()


def test_a_file_input_loops_a_short_file_in_real_time_with_timestamps_that_keep_growing(
    tmp_path: Path, processes: list[RunningProcess]
) -> None:
    clip = make_ts(tmp_path / "clip.ts", seconds=3)
    received = tmp_path / "received.ts"
    with into_srt(endpoint("clip", "file", str(clip)), received, processes) as (source, output):
        assert source.stats.state == "connected"
        time.sleep(8)  # two and a half passes over the file
        state = source.stats.state
        snapshot = source.snapshot()
    assert state == "connected"
    assert source.stats.state == "stopped"

    assert 6.0 <= duration_s(received) <= 10.0
    assert {s["codec_type"] for s in probe(received)["streams"]} == {"video", "audio"}
    assert decode_problems(received) == []
    video = [int(packet["pts"]) for packet in packets(received, "v:0")]
    assert all(later > earlier for earlier, later in pairwise(video))
    # Each pass carries on where the last ended: no step longer than a frame and a little.
    assert max(later - earlier for earlier, later in pairwise(video)) < 90000 * 0.1
    assert (video[-1] - video[0]) / 90000 > 5.0  # more than one pass of the 3 s file
    audio = [int(packet["pts"]) for packet in packets(received, "a:0")]
    assert all(later > earlier for earlier, later in pairwise(audio))
    keyframes = sum(1 for packet in packets(received, "v:0") if "K" in packet["flags"])
    assert keyframes >= 6
    assert snapshot["ts"]["cc_errors"] == 0
    assert snapshot["ts"]["sync_errors"] == 0
    assert snapshot["connects"] == 1
    assert output.stats.meter.bytes == received.stat().st_size


@pytest.mark.parametrize(
    ("url", "complaint"),
    [("missing.ts", "no such file"), ("not-media.ts", "Invalid data")],
)
def test_a_file_that_cannot_be_played_fails_the_start_naming_the_file(tmp_path: Path, url: str, complaint: str) -> None:
    (tmp_path / "not-media.ts").write_text("not a transport stream\n" * 100)
    path = tmp_path / url
    source = build_input(endpoint("clip", "file", str(path)))
    with pytest.raises(ValueError, match=complaint) as raised:
        source.start(lambda data, length: None)
    assert str(path) in str(raised.value)
    assert source.stats.state != "connected"
    source.stop()


def test_http_ts_is_pulled_and_passed_through_then_reconnected_after_the_server_ends(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess]
) -> None:
    port = free_port()
    received = tmp_path / "received.ts"
    source_config = endpoint("web", "http", f"http://127.0.0.1:{port}/live.ts", timeout_ms="5000")
    with into_srt(source_config, received, processes) as (source, output):
        # Nothing listens yet: the input keeps trying and says why.
        wait_until(lambda: "refused" in source.stats.reason, 15, "the input to report the refused connection")
        assert source.stats.state == "connecting"
        server = ffmpeg_http_ts_server(sample_ts, port)
        processes.append(server)
        wait_until(lambda: source.stats.state == "connected", 30, "the input to connect")
        assert source.stats.peer == f"http://127.0.0.1:{port}"
        assert server.popen.wait(timeout=60) == 0, server.tail()
        # The server served the file once and left: the input goes back to trying.
        wait_until(lambda: source.stats.state == "connecting", 30, "the input to notice the end")
        wait_until(lambda: output.stats.meter.bytes == source.stats.meter.bytes > 0, 10, "the last bytes")
        snapshot = source.snapshot()

    assert abs(duration_s(received) - duration_s(sample_ts)) < 1.0
    assert {s["codec_type"] for s in probe(received)["streams"]} == {"video", "audio"}
    assert decode_problems(received) == []
    # Passed through: every message is whole packets, the stream exactly as served.
    assert snapshot["bytes"] == received.stat().st_size
    assert snapshot["bytes"] % PACKET == 0
    assert snapshot["ts"]["sync_errors"] == 0
    assert snapshot["ts"]["cc_errors"] == 0
    assert snapshot["connects"] == 1
    assert snapshot["disconnects"] == 1


def test_hls_is_pulled_remuxed_and_paced(tmp_path: Path, processes: list[RunningProcess]) -> None:
    directory = tmp_path / "hls"
    directory.mkdir()
    processes.append(ffmpeg_live_hls(directory))
    port = free_port()
    server = http_server(directory, port)
    processes.append(server)
    for name in ("live_0.m3u8", "live_1.m3u8"):
        playlist = directory / name
        wait_until(lambda p=playlist: p.exists() and p.read_text().count("#EXTINF") >= 3, 30, f"segments in {name}")
    master = f"http://127.0.0.1:{port}/master.m3u8"
    wait_for_url(master, server)

    received = tmp_path / "received.ts"
    with into_srt(endpoint("hls", "hls", master), received, processes) as (source, _):
        wait_until(lambda: source.stats.meter.bytes > 0, 30, "the first HLS bytes")
        arrivals = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            arrivals.append(source.stats.meter.bytes)
            time.sleep(0.25)
        snapshot = source.snapshot()

    assert snapshot["state"] == "connected"
    assert snapshot["peer"] == f"http://127.0.0.1:{port}"
    assert duration_s(received) > 4.0
    # Of the two variants, the higher one alone: one video, one audio.
    assert [(s["codec_type"], s.get("width")) for s in streams(received)] == [("video", 320), ("audio", None)]
    assert decode_problems(received) == []
    assert snapshot["ts"]["cc_errors"] == 0
    # Paced: bytes keep coming every quarter of a second, not one segment at a time.
    assert all(later > earlier for earlier, later in pairwise(arrivals))
    video = [int(packet["pts"]) for packet in packets(received, "v:0")]
    assert all(later > earlier for earlier, later in pairwise(video))

    # A bitrate cap picks the variant under it.
    capped = tmp_path / "capped.ts"
    with into_srt(endpoint("hls-low", "hls", master, max_bitrate_kbps="500"), capped, processes) as (source, _):
        wait_until(lambda: source.stats.meter.bytes > 100_000, 30, "some of the lower variant")
    assert [(s["codec_type"], s.get("width")) for s in streams(capped)] == [("video", 160), ("audio", None)]

    # A playlist that is not there is reported in the server's words, and tried again.
    missing = build_input(endpoint("gone", "hls", f"http://127.0.0.1:{port}/missing.m3u8", timeout_ms="3000"))
    missing.start(lambda data, length: None)
    try:
        wait_until(lambda: "404" in missing.stats.reason, 20, "the 404 to be reported")
        assert missing.stats.state == "connecting"
    finally:
        missing.stop()
    assert missing.stats.state == "stopped"


def test_pull_inputs_refuse_a_url_they_cannot_pull() -> None:
    with pytest.raises(ValueError, match=r"needs an http:// or https:// URL"):
        build_input(endpoint("web", "http", "ftp://example.net/live.ts"))
    with pytest.raises(ValueError, match=r"option timeout_ms must be a whole number, not 'soon'"):
        build_input(endpoint("web", "hls", "http://example.net/live.m3u8", timeout_ms="soon"))


# RTMP push


def test_rtmp_push_reaches_an_ffmpeg_server_and_reconnects_when_it_restarts(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    first, second = tmp_path / "first.flv", tmp_path / "second.flv"
    relay = relays(
        endpoint("clip", "file", str(sample_ts)),
        endpoint("push", "rtmp", f"rtmp://127.0.0.1:{port}/live", stream_key="key"),
    )
    output = relay.outputs[0]
    # No server yet: refused, and tried again.
    wait_until(lambda: "refused" in output.stats.reason, 15, "the output to report the refused connection")
    server = ffmpeg_rtmp_server(port, first)
    processes.append(server)
    wait_until(lambda: output.stats.state == "connected", 30, "the output to publish")
    wait_until(lambda: output.stats.meter.bytes > 300_000, 30, "a few seconds of the stream")

    stop_process_tree(server)  # the server goes away mid-stream
    wait_until(lambda: output.stats.state == "connecting", 30, "the output to notice")
    server = ffmpeg_rtmp_server(port, second)
    processes.append(server)
    wait_until(lambda: output.stats.state == "connected" and output.stats.connects == 2, 60, "a new connection")
    sent = output.stats.meter.bytes
    wait_until(lambda: output.stats.meter.bytes > sent + 300_000, 30, "bytes to flow again")
    snapshot = output.snapshot()
    relay.stop()  # unpublishes: the server ends its recording and exits
    finish(server, settle_s=15)

    assert snapshot["target"] == f"rtmp://127.0.0.1:{port}/live/***"
    assert snapshot["disconnects"] >= 1
    for recording in (first, second):
        assert codecs(recording) == {"h264", "aac"}
        assert decode_problems(recording) == []
        assert duration_s(recording) > 1.5
        video = packets(recording, "v:0")
        assert "K" in video[0]["flags"], "each connection starts on a keyframe"
        assert int(video[0]["dts"]) < 100  # and from zero


def test_rtmp_timestamps_only_grow_across_failover_switches(
    tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    main = make_ts(tmp_path / "main.ts", seconds=4)
    backup = make_ts_at(tmp_path / "backup.ts", seconds=4, offset_s=1000)  # a clock 1000 s ahead
    port = free_port()
    recording = tmp_path / "pushed.flv"
    server = ffmpeg_rtmp_server(port, recording)
    processes.append(server)
    relay = relays(
        (endpoint("main", "file", str(main)), endpoint("backup", "file", str(backup))),
        endpoint("push", "rtmp", f"rtmp://127.0.0.1:{port}/live/key"),
    )
    output = relay.outputs[0]
    wait_until(lambda: output.stats.state == "connected", 30, "the output to publish")
    time.sleep(3)
    relay.pin("backup")  # 1000 s ahead
    wait_until(lambda: relay.switcher.snapshot()["active"] == "backup", 15, "the switch to the backup")
    time.sleep(3)
    relay.pin("main")  # and 1000 s back
    wait_until(lambda: relay.switcher.snapshot()["active"] == "main", 15, "the switch back")
    time.sleep(3)
    snapshot = output.snapshot()
    relay.stop()
    finish(server, settle_s=15)

    assert snapshot["connects"] == 1, "the server never dropped the publisher"
    assert snapshot["discontinuities"] >= 2
    # What went out only grew: ffmpeg would have complained of non-monotonic timestamps.
    assert "monoton" not in server.output().lower(), server.tail()
    for stream in ("v:0", "a:0"):
        dts = [int(packet["dts"]) for packet in packets(recording, stream)]
        assert all(later > earlier for earlier, later in pairwise(dts))
        # ... without a leap where the clocks differed (FLV timestamps are milliseconds).
        assert max(later - earlier for earlier, later in pairwise(dts)) < 1000
    assert 6.0 < duration_s(recording) < 30.0
    assert codecs(recording) == {"h264", "aac"}


def test_rtmp_targets_from_a_full_url_or_a_url_and_a_stream_key() -> None:
    full = RtmpTarget.parse("rtmp://live.example.net/app/abc-123")
    assert (full.host, full.port, full.tls, full.app, full.stream_key) == (
        "live.example.net",
        1935,
        False,
        "app",
        "abc-123",
    )
    assert full.tc_url == "rtmp://live.example.net/app"
    split = RtmpTarget.parse("rtmps://live-api.example.net:443/rtmp/", "FB-1-0-Ab?s_bl=1")
    assert (split.port, split.tls, split.app, split.stream_key) == (443, True, "rtmp", "FB-1-0-Ab?s_bl=1")
    assert split.tc_url == "rtmps://live-api.example.net:443/rtmp"
    assert RtmpTarget.parse("rtmp://h/live2/key?backup=1").stream_key == "key?backup=1"
    with pytest.raises(ValueError, match="stream key"):
        RtmpTarget.parse("rtmp://h/app")
    with pytest.raises(ValueError, match="rtmp:// or rtmps://"):
        RtmpTarget.parse("http://h/app/key")
    with pytest.raises(ValueError, match="output 'push'"):
        build_output(endpoint("push", "rtmp", "rtmp://h/app"))


def test_the_aac_config_comes_from_the_adts_header() -> None:
    # AAC LC, 48 kHz (index 3), stereo: AudioSpecificConfig 0x1190.
    adts = bytes((0xFF, 0xF1, 0x4C, 0x80, 0x2E, 0x7F, 0xFC))
    assert audio_specific_config(adts) == bytes((0x11, 0x90))
    assert audio_specific_config(b"\x00" * 7) is None


# the building blocks


def test_ts_aligner_finds_packets_in_a_stream_that_starts_mid_packet_and_loses_sync() -> None:
    packets_ = [bytes((0x47, 0x01, index % 256, 0x10)) + bytes(184) for index in range(30)]
    stream = b"\xaa" * 50 + b"".join(packets_[:20]) + b"\xbb" * 7 + b"".join(packets_[20:])
    aligner = TsAligner()
    messages = []
    for start in range(0, len(stream), 1000):  # as reads cut it
        messages += aligner.feed(stream[start : start + 1000])
    joined = b"".join(messages)
    assert all(len(message) % PACKET == 0 and message[0] == 0x47 for message in messages)
    assert aligner.lost_sync == 1
    # The 20 packets before the garbage all went; after it, whole messages wait for their seventh.
    assert joined == b"".join(packets_[:20]) + b"".join(packets_[20:27])


def _streams() -> tuple[object, object]:
    out = av.open(io.BytesIO(), "w", format="mpegts")
    return out.add_mux_stream("h264", rate=25, width=64, height=64), out.add_mux_stream("aac", rate=48000)


def _packet(stream: object, dts: int, duration: int) -> av.Packet:
    packet = av.Packet(b"x")
    packet.stream = stream
    packet.time_base = Fraction(1, 90000)
    packet.dts = packet.pts = dts
    packet.duration = duration
    return packet


def test_timeline_offsets_jumps_away_and_keeps_streams_together() -> None:
    video, audio = _streams()
    timeline = Timeline(max_gap_s=1.0, start_at_zero=True)
    placed: dict[int, list[int]] = {0: [], 1: []}
    # Three encoders' clocks in turn: at 10 s, at 5000 s (a leap ahead), at 20 s (a leap back).
    for base in (900_000, 450_000_000, 1_800_000):
        for frame in range(25):
            for stream in (video, audio):
                packet = _packet(stream, base + frame * 3600, 3600)
                assert timeline.place(packet)
                placed[packet.stream_index].append(packet.dts)
    assert timeline.discontinuities == 2
    assert placed[0][0] == placed[1][0] == 0
    for dts in placed.values():
        assert all(0 < later - earlier <= 3600 for earlier, later in pairwise(dts))
    assert placed[0][-1] == placed[1][-1] == 74 * 3600  # the streams stayed together


def test_timeline_without_a_gap_limit_keeps_gaps_and_mends_going_back() -> None:
    video, _ = _streams()
    timeline = Timeline(max_gap_s=None)
    placed = []
    for dts in (0, 3600, 900_000, 903_600, 3600, 7200):  # a 10 s gap, then back to the start
        packet = _packet(video, dts, 3600)
        timeline.place(packet)
        placed.append(packet.dts)
    assert placed == [0, 3600, 900_000, 903_600, 907_200, 910_800]


def test_timeline_moves_a_stream_that_lands_behind_itself_on_without_squeezing_it() -> None:
    video, audio = _streams()
    timeline = Timeline(max_gap_s=1.0)
    placed: dict[int, list[int]] = {0: [], 1: []}
    # After the jump the new encoder's audio runs 0.2 s behind its video, as muxers interleave.
    for base, audio_lead in ((0, 0), (100_000_000, -18_000)):
        for frame in range(25):
            for stream, shift in ((video, 0), (audio, audio_lead)):
                packet = _packet(stream, base + shift + frame * 3600, 3600)
                timeline.place(packet)
                placed[packet.stream_index].append(packet.dts)
    assert timeline.discontinuities == 1
    for dts in placed.values():
        assert all(0 < later - earlier <= 3600 + 18_000 for earlier, later in pairwise(dts))
    # Past the first frame of the jump, the streams keep the new encoder's 0.2 s between them.
    assert [v - a for v, a in zip(placed[0][26:], placed[1][26:], strict=True)] == [18_000] * 24
