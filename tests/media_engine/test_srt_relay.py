"""An SRT stream relayed between real peers: ffmpeg and srt-live-transmit on both sides of our relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from media_engine.relay import Relay
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import (
    decode_problems,
    duration_s,
    ffmpeg_publish,
    ffmpeg_record,
    ffmpeg_srt_url,
    finish,
    free_udp_port,
    probe,
    slt,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.support.processes import RunningProcess


def test_ffmpeg_to_listener_to_caller_to_srt_live_transmit(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ingest, sink_port = free_udp_port(), free_udp_port()
    received = tmp_path / "received.ts"
    sink = slt_to_file(slt_url("", sink_port, mode="listener", latency="120"), received)
    processes.append(sink)
    relay = relays(
        srt_endpoint("in", mode="listener", port=ingest, streamid="news/main"),
        srt_endpoint("out", mode="caller", host="127.0.0.1", port=sink_port),
    )
    wait_until(lambda: relay.outputs[0].stats.state == "connected", 15, "the caller output to connect")
    encoder = ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", ingest, streamid="news/main"))
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    wait_until(lambda: relay.outputs[0].stats.meter.bytes == relay.input.stats.meter.bytes > 0, 10, "the relay")
    snapshot = relay.snapshot()
    finish(sink)

    assert abs(duration_s(received) - duration_s(sample_ts)) < 0.5
    assert {s["codec_type"] for s in probe(received)["streams"]} == {"video", "audio"}
    assert decode_problems(received) == []
    assert snapshot["inputs"][0]["ts"]["cc_errors"] == 0
    assert snapshot["inputs"][0]["ts"]["sync_errors"] == 0
    assert snapshot["inputs"][0]["ts"]["pat_seen"] > 0
    assert snapshot["outputs"][0]["bytes"] == snapshot["inputs"][0]["bytes"] == received.stat().st_size
    assert snapshot["outputs"][0]["srt"]["packets_sent"] > 0


def test_listener_output_serves_ffmpeg_and_srt_live_transmit_at_once(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_udp_port()
    relay = relays(
        srt_endpoint("in", mode="listener", port=port, streamid="cam"),
        srt_endpoint("play", mode="listener", port=port, streamid="play"),
    )
    by_ffmpeg, by_slt = tmp_path / "ffmpeg.ts", tmp_path / "slt.ts"
    processes.append(ffmpeg_record(ffmpeg_srt_url("127.0.0.1", port, streamid="play"), by_ffmpeg))
    processes.append(slt_to_file(slt_url("127.0.0.1", port, streamid="play"), by_slt))
    wait_until(lambda: len(relay.outputs[0].snapshot()["readers"]) == 2, 15, "both players to connect")

    encoder = ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="cam"))
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    readers = relay.outputs[0].snapshot()["readers"]
    relay.stop()  # the stream ends: players see the connection close and finish their files
    for process in processes[:2]:
        finish(process, settle_s=10)
    for recording in (by_ffmpeg, by_slt):
        assert duration_s(recording) > duration_s(sample_ts) - 0.5
        assert decode_problems(recording) == []
    assert all(reader["bytes"] > 100_000 for reader in readers)
    assert all(reader["srt"]["rtt_ms"] >= 0 and reader["peer"].startswith("127.0.0.1:") for reader in readers)


def test_rendezvous_with_srt_live_transmit(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ours, theirs, play = free_udp_port(), free_udp_port(), free_udp_port()
    relay = relays(
        srt_endpoint("in", mode="rendezvous", host="127.0.0.1", port=theirs, local_port=ours),
        srt_endpoint("play", mode="listener", port=play, streamid="play"),
    )
    received = tmp_path / "received.ts"
    processes.append(ffmpeg_record(ffmpeg_srt_url("127.0.0.1", play, streamid="play"), received))
    # srt-live-transmit meets us in rendezvous mode and sends what ffmpeg gives it on a UDP port.
    feed = free_udp_port()
    processes.append(slt(f"udp://127.0.0.1:{feed}", slt_url("127.0.0.1", ours, mode="rendezvous", port=str(theirs))))
    wait_until(lambda: relay.input.stats.state == "connected", 20, "the rendezvous to complete")
    encoder = ffmpeg_publish(sample_ts, f"udp://127.0.0.1:{feed}?pkt_size=1316")
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    wait_until(lambda: relay.outputs[0].stats.meter.bytes == relay.input.stats.meter.bytes > 0, 10, "the relay")
    snapshot = relay.snapshot()
    relay.stop()
    finish(processes[0], settle_s=10)
    assert duration_s(received) > duration_s(sample_ts) - 0.5
    assert decode_problems(received) == []
    assert snapshot["inputs"][0]["ts"]["cc_errors"] == 0
    assert snapshot["inputs"][0]["peer"] == f"127.0.0.1:{theirs}"
