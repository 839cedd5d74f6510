"""RTMP ingest between real peers: ffmpeg publishes RTMP to our relay's RTMP input, the relay sends
the remuxed MPEG-TS on over SRT, and srt-live-transmit writes what it receives to a file."""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig
from media_engine.relay import Relay
from media_engine.rtmp.chunks import ChunkReader, Message
from media_engine.switcher import SwitchEvent
from tests.media_engine.conftest import srt_endpoint
from tests.peers import ts_check
from tests.peers.media import (
    decode_problems,
    duration_s,
    ffmpeg_rtmp_encoder,
    ffmpeg_rtmp_publish,
    finish,
    free_udp_port,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.support.processes import RunningProcess, free_port, stop_process_tree

KEY = "studio-key-7f3a"


def rtmp_endpoint(name: str, port: int, stream_key: str = KEY, app: str = "live") -> EndpointConfig:
    return EndpointConfig(
        id=name, name=name, protocol="rtmp", port=port, options={"app": app, "stream_key": stream_key}
    )


def rtmp_url(port: int, stream_key: str = KEY, app: str = "live") -> str:
    return f"rtmp://127.0.0.1:{port}/{app}/{stream_key}"


def srt_receiver(name: str, tmp_path: Path, processes: list[RunningProcess]) -> tuple[EndpointConfig, Path]:
    """srt-live-transmit listening and writing a file; the relay's output calls it."""
    port, received = free_udp_port(), tmp_path / f"{name}.ts"
    processes.append(slt_to_file(slt_url("", port, mode="listener", latency="120"), received))
    return srt_endpoint(name, mode="caller", host="127.0.0.1", port=port), received


def streams(path: Path) -> list[dict]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)["streams"]


def publish_once(source: Path, url: str, seconds: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "info", "-i", str(source), "-t", str(seconds), "-c", "copy", "-f", "flv",
         url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "offset_s",
    [0, 20_000],
    ids=["from-zero", "extended-timestamps"],  # 20000 s is past the 24-bit millisecond field of a chunk header
)
def test_ffmpeg_publishes_rtmp_and_an_srt_receiver_gets_clean_h264_and_aac(
    offset_s: int, sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    output, received = srt_receiver("out", tmp_path, processes)
    relay = relays(rtmp_endpoint("in", port), output)
    assert relay.input.stats.state == "listening"
    assert not relay.input.link_up()
    wait_until(lambda: relay.outputs[0].stats.state == "connected", 15, "the SRT output to connect")

    extra = ("-output_ts_offset", str(offset_s)) if offset_s else ()
    encoder = ffmpeg_rtmp_publish(sample_ts, rtmp_url(port), extra=extra)
    processes.append(encoder)
    wait_until(lambda: relay.input.stats.state == "connected", 20, "the publisher to be taken")
    assert relay.input.link_up()
    assert relay.input.stats.peer.startswith("127.0.0.1:")
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    wait_until(lambda: relay.input.stats.state == "listening", 15, "the input to see the publisher leave")
    wait_until(lambda: relay.outputs[0].stats.meter.bytes == relay.input.stats.meter.bytes > 0, 10, "the relay")
    snapshot = relay.snapshot()["inputs"][0]
    finish(processes[0])

    assert abs(duration_s(received) - duration_s(sample_ts)) < 0.5
    assert sorted((s["codec_type"], s["codec_name"]) for s in streams(received)) == [
        ("audio", "aac"),
        ("video", "h264"),
    ]
    assert decode_problems(received) == []
    packets = ts_check.parse(received.read_bytes())
    assert ts_check.continuity_errors(packets) == []
    pcrs = [packet for packet in packets if packet.pcr is not None]
    assert len(pcrs) > 8 * 10, "a PCR at least every 100 ms"
    assert ts_check.pcr_jumps(packets) == []
    assert sum(packet.random_access for packet in packets) >= 7, "keyframes flagged (a 1 s GOP)"
    assert len(ts_check.pats(packets)) > 8 * 5, "PAT repeated"
    assert len(ts_check.pmts(packets)) > 8 * 5, "PMT repeated"
    assert snapshot["ts"]["cc_errors"] == snapshot["ts"]["sync_errors"] == 0
    assert snapshot["bytes"] == received.stat().st_size
    assert snapshot["connects"] == 1
    assert snapshot["reason"] == "the publisher stopped publishing"


def test_a_wrong_stream_key_or_app_is_refused_logged_and_counted(
    sample_ts: Path, relays: Callable[..., Relay], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="media_engine")
    port = free_port()
    relay = relays(rtmp_endpoint("in", port))
    server = relay.input.server
    assert server is not None
    seen = []
    server.on_refusal.append(seen.append)

    for url in (rtmp_url(port, "not-the-key"), rtmp_url(port, KEY, app="other")):
        refused = publish_once(sample_ts, url)
        assert refused.returncode != 0, refused.stderr[-2000:]
        assert "unknown application or stream key" in refused.stderr.lower(), refused.stderr[-2000:]

    assert relay.input.stats.meter.bytes == 0
    assert relay.input.stats.state == "listening"
    assert relay.input.stats.connects == 0
    assert relay.input.stats.reason == "", "an input hears nothing of publishers for other keys"
    assert server.refused == 2
    assert [(r.app, r.peer.split(":")[0]) for r in seen] == [("live", "127.0.0.1"), ("other", "127.0.0.1")]
    assert list(server.refusals) == seen
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refused" in r.getMessage()]
    assert len(warnings) == 2
    assert all("127.0.0.1:" in line for line in warnings)
    assert KEY not in caplog.text, "stream keys stay out of logs"
    assert "not-the-key" not in caplog.text

    accepted = publish_once(sample_ts, rtmp_url(port), seconds=2)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    wait_until(lambda: relay.input.stats.meter.bytes > 50_000, 10, "media from the right key")
    assert server.refused == 2


def test_a_publisher_that_drops_and_comes_back_is_taken_at_once_and_the_stream_runs_on(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    output, received = srt_receiver("out", tmp_path, processes)
    receiver = processes[0]
    relay = relays(rtmp_endpoint("in", port), output)
    wait_until(lambda: relay.outputs[0].stats.state == "connected", 15, "the SRT output to connect")
    first = ffmpeg_rtmp_publish(sample_ts, rtmp_url(port), loop=True)
    processes.append(first)
    wait_until(lambda: relay.input.stats.meter.bytes > 300_000, 20, "media from the first publisher")

    os.kill(first.pid, signal.SIGKILL)
    first.popen.wait(timeout=10)
    second = ffmpeg_rtmp_publish(sample_ts, rtmp_url(port), loop=True)
    processes.append(second)
    resumed = relay.input.stats.meter.bytes
    wait_until(lambda: relay.input.stats.connects == 2, 10, "the second publisher to be taken")
    wait_until(lambda: relay.input.stats.meter.bytes > resumed + 300_000, 15, "media after the reconnect")
    assert relay.input.stats.state == "connected"
    assert second.popen.poll() is None, second.tail()

    stop_process_tree(second)
    wait_until(lambda: relay.input.stats.state == "listening", 15, "the second publisher to leave")
    wait_until(lambda: relay.outputs[0].stats.meter.bytes == relay.input.stats.meter.bytes, 10, "the relay")
    finish(receiver)
    # The same encoder settings: one MPEG-TS throughout, continuity counters and clock running on.
    assert relay.input.ts_stream.muxers_opened == 1
    assert relay.input.snapshot()["ts"]["cc_errors"] == 0
    packets = ts_check.parse(received.read_bytes())
    assert ts_check.continuity_errors(packets) == []
    assert [jump for jump in ts_check.pcr_jumps(packets) if jump.step_ms < 0] == [], "the clock never goes back"
    assert decode_problems(received) == []


def test_a_second_publisher_with_the_same_key_replaces_the_first(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    relay = relays(rtmp_endpoint("in", port))
    first = ffmpeg_rtmp_publish(sample_ts, rtmp_url(port), loop=True)
    processes.append(first)
    wait_until(lambda: relay.input.stats.meter.bytes > 50_000, 20, "media from the first publisher")
    first_peer = relay.input.stats.peer

    second = ffmpeg_rtmp_publish(sample_ts, rtmp_url(port), loop=True)
    processes.append(second)
    wait_until(lambda: relay.input.stats.peer != first_peer, 10, "the second publisher to take over")
    taken_over = relay.input.stats.meter.bytes
    wait_until(lambda: relay.input.stats.meter.bytes > taken_over + 100_000, 15, "media from the second publisher")
    assert relay.input.stats.connects == 2
    assert relay.input.stats.state == "connected"
    assert first.popen.wait(timeout=20) != 0, "the replaced publisher's connection is closed"
    assert second.popen.poll() is None, second.tail()


def test_two_publishers_on_one_port_reach_their_own_inputs(
    tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    news_out, news_file = srt_receiver("news-out", tmp_path, processes)
    sport_out, sport_file = srt_receiver("sport-out", tmp_path, processes)
    receivers = list(processes)
    news = relays(rtmp_endpoint("news-in", port, "news-key-1234"), news_out, name="news")
    sport = relays(rtmp_endpoint("sport-in", port, "sport-key-5678"), sport_out, name="sport")
    assert news.input.server is sport.input.server, "one port, one server"
    for relay in (news, sport):
        wait_until(lambda relay=relay: relay.outputs[0].stats.state == "connected", 15, "the SRT outputs")

    news_encoder = ffmpeg_rtmp_encoder(rtmp_url(port, "news-key-1234"), pattern="testsrc2", size="320x240")
    processes.append(news_encoder)
    wait_until(lambda: news.input.stats.meter.bytes > 100_000, 20, "the news publisher")
    assert sport.input.stats.meter.bytes == 0, "one publisher must not leak into another input"
    sport_encoder = ffmpeg_rtmp_encoder(rtmp_url(port, "sport-key-5678"), pattern="smptebars", size="352x288")
    processes.append(sport_encoder)
    wait_until(lambda: sport.input.stats.meter.bytes > 100_000, 20, "the sport publisher")
    covered = news.input.stats.meter.bytes
    wait_until(lambda: news.input.stats.meter.bytes > covered + 100_000, 20, "both publishers at once")
    assert news.input.stats.peer != sport.input.stats.peer

    for encoder in (news_encoder, sport_encoder):
        stop_process_tree(encoder)  # SIGTERM: ffmpeg unpublishes and closes
    for relay in (news, sport):
        wait_until(lambda relay=relay: relay.input.stats.state == "listening", 15, "the publishers to leave")
        sent = relay.input.stats.meter.bytes
        wait_until(lambda relay=relay, sent=sent: relay.outputs[0].stats.meter.bytes == sent, 10, "the relay")
    for receiver in receivers:
        finish(receiver)

    for recording, width in ((news_file, 320), (sport_file, 352)):
        found = streams(recording)
        assert sorted(s["codec_name"] for s in found) == ["aac", "h264"]
        assert [s["width"] for s in found if s["codec_type"] == "video"] == [width]
        assert decode_problems(recording) == []
        assert ts_check.continuity_errors(ts_check.parse(recording.read_bytes())) == []


def test_failover_sees_an_rtmp_publisher_leave_and_takes_the_backup(
    processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_port()
    events: list[SwitchEvent] = []
    relay = relays(
        (rtmp_endpoint("main", port, "main-key-0001"), rtmp_endpoint("backup", port, "backup-key-0002")),
        on_event=events.append,
    )
    main = ffmpeg_rtmp_encoder(rtmp_url(port, "main-key-0001"))
    processes.append(main)
    processes.append(ffmpeg_rtmp_encoder(rtmp_url(port, "backup-key-0002"), pattern="smptebars"))

    def healthy() -> dict[str, bool]:
        return {key: value["healthy"] for key, value in relay.switcher.snapshot()["health"].items()}

    wait_until(lambda: healthy() == {"main": True, "backup": True}, 30, "both publishers to be healthy")
    wait_until(lambda: relay.switcher.snapshot()["active"] == "main", 15, "the main input on air")

    os.kill(main.pid, signal.SIGKILL)
    main.popen.wait(timeout=10)
    wait_until(lambda: relay.switcher.snapshot()["active"] == "backup", 15, "the switch to the backup")
    assert not healthy()["main"]
    wait_until(lambda: relay.inputs[0].stats.state == "listening", 15, "the main input to see its publisher gone")
    assert not relay.inputs[0].link_up()
    assert any(event.kind == "input_down" and event.data.get("input") == "main" for event in events), events


# The chunk stream, byte by byte: what real publishers send only some of the time.


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise EOFError
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def peek(self, size: int) -> bytes:
        return self.data[self.offset : self.offset + size]


def _ts24(value: int) -> bytes:
    return min(value, 0xFFFFFF).to_bytes(3, "big")


def test_chunk_reader_reassembles_every_header_type_with_extended_timestamps() -> None:
    big = bytes(range(256)) + bytes(44)  # 300 bytes: three chunks of 100
    extended = 0x01000000 + 5
    data = b"".join(
        [
            # Set Chunk Size (100) on chunk stream 2
            bytes((0x02,)) + _ts24(0) + (4).to_bytes(3, "big") + b"\x01" + struct.pack("<I", 0),
            struct.pack(">I", 100),
            # type 0 on chunk stream 4 with an extended timestamp, repeated on its type 3 chunks
            bytes((0x04,)) + _ts24(extended) + (300).to_bytes(3, "big") + b"\x09" + struct.pack("<I", 1),
            struct.pack(">I", extended) + big[:100],
            # an audio message on chunk stream 6 between two chunks of the video message
            bytes((0x06,)) + _ts24(3) + (2).to_bytes(3, "big") + b"\x08" + struct.pack("<I", 1) + b"au",
            bytes((0xC4,)) + struct.pack(">I", extended) + big[100:200],
            bytes((0xC4,)) + struct.pack(">I", extended) + big[200:],
            # type 1: a delta, a new length and type
            bytes((0x44,)) + _ts24(40) + (3).to_bytes(3, "big") + b"\x08" + b"abc",
            # type 2: a new delta only; type 3 repeats it for a whole new message
            bytes((0x84,)) + _ts24(20) + b"def",
            bytes((0xC4,)) + b"ghi",
            # a chunk stream ID above 319 takes a three-byte basic header
            bytes((0x01, 0x00, 0x02)) + _ts24(7) + (2).to_bytes(3, "big") + b"\x12" + struct.pack("<I", 1) + b"hi",
        ]
    )
    reader = ChunkReader(_Bytes(data))
    control = reader.read_message()
    assert control == Message(1, 0, 0, struct.pack(">I", 100), 2)
    reader.set_chunk_size(100)  # as the connection does on Set Chunk Size
    assert reader.read_message() == Message(8, 1, 3, b"au", 6)
    assert reader.read_message() == Message(9, 1, extended, big, 4)
    assert reader.read_message() == Message(8, 1, extended + 40, b"abc", 4)
    assert reader.read_message() == Message(8, 1, extended + 60, b"def", 4)
    assert reader.read_message() == Message(8, 1, extended + 80, b"ghi", 4)
    assert reader.read_message() == Message(0x12, 1, 7, b"hi", 64 + 2 * 256)
