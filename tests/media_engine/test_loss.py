"""SRT recovers loss on both hops of the relay: the final receiver gets every TS packet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from media_engine.relay import Relay
from media_engine.ts import TsAnalyzer
from tests.media_engine.conftest import srt_endpoint
from tests.peers.impairment import ImpairmentProxy
from tests.peers.media import (
    ffmpeg_publish,
    ffmpeg_srt_url,
    finish,
    free_udp_port,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.support.processes import RunningProcess

LOSS_PERCENT = 2
DELAY_MS = 20  # each way: RTT about 40 ms
# Well over 4 x RTT: room for retransmissions that are lost again, and for a busy 2-core test machine
# that schedules the proxy, the encoder and the relay late.
LATENCY_MS = 1000


def test_two_percent_loss_each_way_on_both_hops_loses_no_packet(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ingest, sink_port = free_udp_port(), free_udp_port()
    received = tmp_path / "received.ts"
    processes.append(slt_to_file(slt_url("", sink_port, mode="listener", latency=str(LATENCY_MS)), received))
    with (
        ImpairmentProxy(("127.0.0.1", ingest), loss_percent=LOSS_PERCENT, delay_ms=DELAY_MS, seed=1) as first_hop,
        ImpairmentProxy(("127.0.0.1", sink_port), loss_percent=LOSS_PERCENT, delay_ms=DELAY_MS, seed=2) as last_hop,
    ):
        relay = relays(
            srt_endpoint("in", mode="listener", port=ingest, streamid="cam", latency_ms=LATENCY_MS),
            srt_endpoint(
                "out", mode="caller", host="127.0.0.1", port=last_hop.listen_address[1], latency_ms=LATENCY_MS
            ),
        )
        wait_until(lambda: relay.outputs[0].stats.state == "connected", 15, "the output through the lossy hop")
        host, port = first_hop.listen_address
        # A loop: SRT live mode recovers a loss when a later packet reveals the gap, so the check
        # runs on a stream that keeps flowing, as a 24/7 feed does, and the receiver is stopped mid-stream.
        encoder = ffmpeg_publish(
            sample_ts, ffmpeg_srt_url(host, port, latency_ms=LATENCY_MS, streamid="cam"), loop=True
        )
        processes.append(encoder)
        # Read stats while media flows, as the route's runner does every second.
        wait_until(lambda: relay.snapshot()["inputs"][0]["bytes"] > 1_200_000, 60, "ten seconds of media")
        snapshot = relay.snapshot()
        finish(processes[0], settle_s=0)
        hops = (first_hop, last_hop)
        assert all(hop.upstream.dropped > 0 and hop.downstream.dropped > 0 for hop in hops), "loss was applied"

    assert snapshot["inputs"][0]["ts"]["cc_errors"] == 0, snapshot["inputs"][0]
    assert snapshot["inputs"][0]["srt"]["packets_lost_recv"] > 0, "the input saw loss and recovered it"
    assert snapshot["inputs"][0]["srt"]["packets_dropped_recv"] == 0
    assert snapshot["outputs"][0]["srt"]["packets_retransmitted"] > 0
    assert snapshot["outputs"][0]["srt"]["packets_dropped_send"] == 0
    data = received.read_bytes()
    assert len(data) > 1_000_000
    analyzer = TsAnalyzer()
    analyzer.feed(data)
    # Continuity counters run unbroken on every PID: no packet is missing anywhere in the file.
    # (The receiver was stopped mid-frame, so the file is not decoded to its end here.)
    assert analyzer.counters.cc_errors == 0
    assert analyzer.counters.sync_errors <= 1, "at most the cut at the very end"
    assert analyzer.counters.packets >= 5000
