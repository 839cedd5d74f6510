"""Transcoding outputs with real peers: ffmpeg encoders in, srt-live-transmit or a UDP socket out,
ffprobe and a decoder on what comes out, as a viewer or an operator would check it.

Renditions use x264's ultrafast preset: the machine running the tests is small and shared, and
what is checked here (size, rate, codec, bitrate, sync, keyframes) does not depend on the preset.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media_engine.config import EndpointConfig, TranscodeSettings
from media_engine.outputs import build_output
from media_engine.relay import Relay
from media_engine.transcoder import ladder
from media_engine.transcoder.encoders import EncoderUnavailable
from media_engine.transcoder.feed import MessageQueue
from media_engine.transcoder.framerate import FrameRateMapper
from media_engine.transcoder.output import TranscodingOutput
from media_engine.transcoder.scaler import Scaler
from media_engine.transcoder.stats import SNAPSHOT_KEYS, Behind
from tests.media_engine.conftest import srt_endpoint
from tests.peers import av_check, ts_check
from tests.peers.media import (
    decode_problems,
    ffmpeg_live_encoder,
    ffmpeg_publish,
    ffmpeg_srt_url,
    free_udp_port,
    make_av_ts,
    slt_url,
    wait_until,
)
from tests.peers.receiver import TimedReceiver
from tests.peers.udp_probe import UdpCapture
from tests.support.processes import RunningProcess

MESSAGE = 7 * 188


def udp_endpoint(name: str, port: int, *renditions: TranscodeSettings) -> EndpointConfig:
    return EndpointConfig(id=name, name=name, protocol="udp", host="127.0.0.1", port=port, transcode=renditions)


def transcode_of(relay: Relay, index: int = 0) -> dict:
    return relay.snapshot()["outputs"][index]["transcode"]


@pytest.fixture(scope="module")
def source_1080p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_av_ts(tmp_path_factory.mktemp("media") / "1080p30.ts", seconds=12, size="1920x1080", rate=30)


# re-encoding what a viewer receives


def test_a_1080p_feed_comes_out_as_720p30_h264_at_the_bitrate_asked_with_its_audio_copied(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path, source_1080p: Path
) -> None:
    ingest, play = free_udp_port(), free_udp_port()
    target = 2_000_000
    rendition = TranscodeSettings("720p", width=1280, height=720, fps=30, video_bitrate_bps=target, preset="ultrafast")
    relay = relays(
        srt_endpoint("in", mode="listener", port=ingest),
        replace(srt_endpoint("player", mode="listener", port=play), transcode=(rendition,)),
    )
    capture = tmp_path / "720p.ts"
    receiver = TimedReceiver(slt_url("127.0.0.1", play), file=capture).start()
    try:
        processes.append(ffmpeg_publish(source_1080p, ffmpeg_srt_url("127.0.0.1", ingest), loop=True))
        wait_until(lambda: transcode_of(relay)["frames"] >= 30 * 11, 50, "11 s of pictures")
        snapshot = relay.snapshot()["outputs"][0]
    finally:
        receiver.stop()

    assert set(snapshot["transcode"]) == set(SNAPSHOT_KEYS)
    assert snapshot["transcode"]["encoder"] == "libx264 (software)", "auto takes software on a node without a GPU"
    assert snapshot["state"] == "connected"
    assert snapshot["bytes"] > 0
    video = av_check.stream(capture, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert Fraction(video["avg_frame_rate"]) == 30
    bitrate, seconds = av_check.video_bitrate_bps(capture, skip_s=1.0)
    assert seconds >= 8
    assert abs(bitrate - target) <= 0.1 * target, f"{bitrate / 1e6:.2f} Mb/s over {seconds:.1f} s"
    audio = av_check.stream(capture, "audio")
    assert (audio["codec_name"], audio["sample_rate"]) == ("aac", "48000")


def test_an_hevc_rendition_with_aac_audio_reencoded_decodes_cleanly(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path
) -> None:
    ingest, port = free_udp_port(), free_udp_port()
    rendition = TranscodeSettings(
        "hevc",
        video_codec="hevc",
        width=640,
        height=360,
        video_bitrate_bps=600_000,
        preset="ultrafast",
        audio_codec="aac",
        audio_bitrate_bps=96_000,
    )
    with UdpCapture(port) as capture:
        relay = relays(srt_endpoint("in", mode="listener", port=ingest), udp_endpoint("out", port, rendition))
        processes.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", ingest), tsid=10, tone_hz=1000))
        wait_until(lambda: transcode_of(relay)["frames"] >= 25 * 6, 40, "6 s of pictures")
        relay.stop()  # the capture ends on whole frames: the encoders are flushed first
        time.sleep(0.3)
    path = capture.save(tmp_path / "hevc.ts")
    assert transcode_of(relay)["encoder"] == "libx265 (software)"
    video = av_check.stream(path, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("hevc", 640, 360)
    assert Fraction(video["avg_frame_rate"]) == 25, "no rate asked: the source's"
    audio = av_check.stream(path, "audio")
    assert (audio["codec_name"], audio["sample_rate"]) == ("aac", "48000")
    assert decode_problems(path) == []
    assert len(av_check.beep_onsets(path)) >= 1, "the tone decodes"


# encoders a node has, or has not


def test_a_rendition_asking_for_vaapi_on_a_node_without_it_fails_at_start_saying_so() -> None:
    config = udp_endpoint("gpu out", free_udp_port(), TranscodeSettings("720p", encoder="vaapi", width=1280))
    output = build_output(config)
    assert isinstance(output, TranscodingOutput)
    with pytest.raises(EncoderUnavailable) as raised:
        output.start()
    message = str(raised.value)
    assert message.startswith('output "gpu out": the VAAPI encoder is not available on this node')
    assert "software (x264/x265)" in message


def test_only_hls_outputs_take_several_renditions(tmp_path: Path) -> None:
    two = (TranscodeSettings("low", width=640, height=360), TranscodeSettings("high", width=1280, height=720))
    with pytest.raises(ValueError, match="only HLS outputs take several renditions"):
        build_output(udp_endpoint("out", free_udp_port(), *two))
    hls = EndpointConfig(id="hls", name="hls", protocol="hls", url=str(tmp_path), transcode=two)
    assert isinstance(build_output(hls), TranscodingOutput)


# HLS ladder


def test_an_hls_ladder_lists_both_renditions_and_their_segments_start_on_the_same_keyframes(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path
) -> None:
    ingest, directory = free_udp_port(), tmp_path / "hls"
    renditions = (
        TranscodeSettings("360p", width=640, height=360, video_bitrate_bps=800_000, preset="ultrafast"),
        TranscodeSettings("720p", width=1280, height=720, video_bitrate_bps=2_500_000, preset="ultrafast"),
    )
    config = EndpointConfig(
        id="hls", name="hls", protocol="hls", url=str(directory), options={"segment_s": "2"}, transcode=renditions
    )
    relay = relays(srt_endpoint("in", mode="listener", port=ingest), config)
    processes.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", ingest), tsid=10, tone_hz=1000))
    playlists = [directory / name / "index.m3u8" for name in ("360p", "720p")]

    def segments(playlist: Path) -> list[str]:
        if not playlist.exists():
            return []
        return [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]

    wait_until(lambda: all(len(segments(playlist)) >= 3 for playlist in playlists), 50, "three segments each")
    relay.stop()

    master = (directory / "index.m3u8").read_text().splitlines()
    variants = [(line, master[number + 1]) for number, line in enumerate(master) if line.startswith("#EXT-X-STREAM")]
    assert [uri for _, uri in variants] == ["720p/index.m3u8", "360p/index.m3u8"], "highest bitrate first"
    for (info, _), (width, height), bitrate in zip(
        variants, [(1280, 720), (640, 360)], [2_500_000, 800_000], strict=True
    ):
        attributes = dict(item.split("=") for item in info.split(":", 1)[1].split(","))
        assert attributes["RESOLUTION"] == f"{width}x{height}"
        assert bitrate < int(attributes["BANDWIDTH"]) < 1.5 * (bitrate + 128_000)

    starts = []
    for playlist, (width, height) in zip(playlists, [(640, 360), (1280, 720)], strict=True):
        names = segments(playlist)
        for name in names:
            video = av_check.stream(playlist.parent / name, "video")
            assert (video["width"], video["height"]) == (width, height)
        starts.append({name: av_check.video_packets(playlist.parent / name)[0] for name in names})
    common = sorted(set(starts[0]) & set(starts[1]))
    assert len(common) >= 3
    for name in common:
        (low_pts, _, low_key), (high_pts, _, high_key) = starts[0][name], starts[1][name]
        assert low_key, f"{name} starts on a keyframe"
        assert high_key, f"{name} starts on a keyframe"
        assert low_pts == pytest.approx(high_pts, abs=0.001), f"{name} starts at the same instant in both"
    snapshot = relay.snapshot()["outputs"][0]
    assert [entry["rendition"] for entry in snapshot["renditions"]] == ["360p", "720p"]
    assert all(entry["transcode"]["frames"] > 0 for entry in snapshot["renditions"])


# living with the rest of the route


def test_a_passthrough_output_of_the_same_route_is_untouched_while_another_transcodes(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path
) -> None:
    ingest, plain_port, transcoded_port = free_udp_port(), free_udp_port(), free_udp_port()
    rendition = TranscodeSettings("sd", width=640, height=360, video_bitrate_bps=1_000_000, preset="ultrafast")
    with UdpCapture(plain_port) as plain, UdpCapture(transcoded_port) as transcoded:
        relay = relays(
            srt_endpoint("in", mode="listener", port=ingest),
            udp_endpoint("plain", plain_port),
            udp_endpoint("transcoded", transcoded_port, rendition),
        )
        processes.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", ingest), tsid=10, tone_hz=1000))
        wait_until(lambda: transcode_of(relay, 1)["frames"] >= 25 * 6, 40, "6 s of transcoded pictures")
        relay.stop()
        time.sleep(0.3)
    snapshot = relay.snapshot()
    received = snapshot["inputs"][0]["bytes"]
    assert plain.bytes == snapshot["outputs"][0]["bytes"]
    assert plain.bytes >= received - 20 * MESSAGE, "every message the input got went out unchanged"
    assert ts_check.continuity_errors(ts_check.parse(bytes(plain.data))) == []
    assert snapshot["outputs"][0]["dropped_messages"] == 0
    assert transcoded.bytes > 100_000
    assert decode_problems(transcoded.save(tmp_path / "transcoded.ts")) == []


def test_garbage_in_the_input_is_counted_and_the_output_keeps_flowing(sample_ts: Path, tmp_path: Path) -> None:
    port = free_udp_port()
    output = build_output(udp_endpoint("out", port, TranscodeSettings("sd", width=320, height=240, preset="ultrafast")))
    assert isinstance(output, TranscodingOutput)
    data = sample_ts.read_bytes()
    messages = [data[start : start + MESSAGE] for start in range(0, len(data), MESSAGE)]
    noise = random.Random(7)
    for index in range(len(messages) // 3, 2 * len(messages) // 3, 5):
        if noise.random() < 0.5:
            messages[index] = noise.randbytes(MESSAGE)  # no TS at all
        else:  # TS headers kept, payloads (pictures among them) scrambled
            packets = [messages[index][at : at + 188] for at in range(0, MESSAGE, 188)]
            messages[index] = b"".join(packet[:4] + noise.randbytes(184) for packet in packets)
    with UdpCapture(port) as capture:
        output.start()
        try:
            for message in messages:
                output.offer(message, len(message))
                time.sleep(0.002)
            stats = output.transcode_stats
            assert stats is not None
            wait_until(lambda: stats.frames >= 150, 30, "the pictures after the garbage")
        finally:
            output.stop()
        time.sleep(0.3)
    snapshot = output.snapshot()
    assert snapshot["state"] != "failed", snapshot["reason"]
    assert snapshot["transcode"]["decode_errors"] > 0
    path = capture.save(tmp_path / "out.ts")
    # Pictures of the last third, after the garbage, made it out.
    assert av_check.pictures(path)[-1].time_s - av_check.pictures(path)[0].time_s > 6


def test_an_input_without_pictures_fails_the_output_visibly_and_it_recovers_once_pictures_come(
    sample_ts: Path, tmp_path: Path
) -> None:
    sound_only = tmp_path / "sound.ts"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(sample_ts),
            "-vn",
            "-c:a",
            "copy",
            str(sound_only),
        ],
        check=True,
        timeout=60,
    )
    port = free_udp_port()
    output = build_output(udp_endpoint("out", port, TranscodeSettings("sd", width=320, height=240, preset="ultrafast")))
    assert isinstance(output, TranscodingOutput)

    def feed(path: Path) -> None:
        data = path.read_bytes()
        for start in range(0, len(data), MESSAGE):
            output.offer(data[start : start + MESSAGE], len(data[start : start + MESSAGE]))
            time.sleep(0.001)

    with UdpCapture(port) as capture:
        output.start()
        try:
            feed(sound_only)
            wait_until(lambda: output.snapshot()["state"] == "failed", 30, "the output to fail")
            failed = output.snapshot()
            feed(sample_ts)
            wait_until(lambda: output.snapshot()["transcode"]["frames"] >= 50, 60, "pictures after the restart")
            recovered = output.snapshot()
        finally:
            output.stop()
        time.sleep(0.3)
    assert "no video stream" in failed["reason"]
    assert recovered["state"] != "failed"
    assert recovered["transcoder_restarts"] >= 1
    assert av_check.pictures(capture.save(tmp_path / "out.ts"))


def test_stopping_an_output_that_never_got_data_returns_promptly() -> None:
    output = build_output(udp_endpoint("idle", free_udp_port(), TranscodeSettings("sd", width=320)))
    output.start()
    began = time.monotonic()
    output.stop()
    assert time.monotonic() - began < 2


# the parts, without media


@pytest.mark.parametrize(
    ("source_fps", "duplicated", "dropped"),
    [(25, 5, 0), (60, 0, 30), (30, 0, 0)],
    ids=["25->30", "60->30", "30->30"],
)
def test_frame_rate_mapping_repeats_or_drops_pictures_to_hold_30_fps(
    source_fps: int, duplicated: int, dropped: int
) -> None:
    mapper = FrameRateMapper(Fraction(30))
    emitted = 0
    for number in range(source_fps * 10):
        placement = mapper.place(Fraction(number, source_fps) + 1000)
        emitted += 0 if placement.dropped else placement.repeat + 1
    # Ten seconds in, ten seconds (give or take the last picture) out.
    assert abs(emitted - 300) <= 1
    assert abs(mapper.duplicated - duplicated * 10) <= 1
    assert abs(mapper.dropped - dropped * 10) <= 1


def test_frame_rate_mapping_repeats_the_previous_picture_and_never_shows_one_early() -> None:
    mapper = FrameRateMapper(Fraction(30))
    assert mapper.place(Fraction(0)).slot == 0
    gap = mapper.place(Fraction(4, 30))  # three slots with nothing new
    assert (gap.slot, gap.repeat, gap.dropped) == (4, 3, False)
    late = mapper.place(Fraction(4, 30) + Fraction(1, 100))  # lands on the slot already shown
    assert late.dropped
    assert (mapper.duplicated, mapper.dropped) == (3, 1)


def test_behind_turns_on_when_input_waits_and_off_only_after_catching_up_for_a_while() -> None:
    behind = Behind()
    behind.update(0.0, 0.2, 0)
    assert not behind.behind
    behind.update(1.0, 1.5, 0)
    assert behind.behind
    assert "1.5 s" in behind.reason
    behind.update(2.0, 0.1, 0)
    assert behind.behind, "one good reading is not catching up"
    behind.update(4.5, 0.1, 0)
    assert not behind.behind
    behind.update(5.0, 0.0, 3)
    assert behind.behind
    assert "queue full" in behind.reason


def test_the_input_queue_never_blocks_the_relay_and_a_blocked_read_ends_on_close() -> None:
    queue = MessageQueue(limit=2)
    assert queue.offer(b"a" * MESSAGE, MESSAGE)
    assert queue.offer(b"b" * MESSAGE, MESSAGE)
    assert not queue.offer(b"c" * MESSAGE, MESSAGE)
    assert queue.overflows == 1
    assert queue.read(MESSAGE + 10) == b"a" * MESSAGE + b"b" * 10
    assert queue.read(10_000) == b"b" * (MESSAGE - 10)
    queue.close()
    assert queue.read(10) == b""


def test_ladder_directories_are_safe_and_unique() -> None:
    names = ladder.directory_names(
        [TranscodeSettings("720p HD"), TranscodeSettings("720p/HD"), TranscodeSettings("../"), TranscodeSettings("Low")]
    )
    assert names == ["720p-hd", "720p-hd-2", "rendition-3", "low"]


def test_the_scaler_follows_a_source_that_changes_size_and_format_at_a_switch() -> None:
    scaler = Scaler(320, 180, "yuv420p")
    pictures = [
        av.VideoFrame(1920, 1080, "yuv420p"),
        av.VideoFrame(720, 576, "yuv422p"),
        av.VideoFrame(720, 576, "yuv422p"),
    ]
    scaled = [scaler(picture) for picture in pictures]
    assert [(frame.width, frame.height, frame.format.name) for frame in scaled] == [(320, 180, "yuv420p")] * 3
    assert scaler.rebuilds == 1
