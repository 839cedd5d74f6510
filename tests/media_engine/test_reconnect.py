"""An SRT caller input that loses its source dials again, with backoff, until the source is back."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from media_engine.relay import Relay
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import ffmpeg_publish, free_udp_port, slt, slt_url, wait_until
from tests.support.processes import RunningProcess


def source(feed: int, port: int) -> RunningProcess:
    """srt-live-transmit offering, as an SRT listener, what ffmpeg sends it over UDP."""
    return slt(f"udp://127.0.0.1:{feed}", slt_url("", port, mode="listener"))


def test_caller_input_comes_back_after_its_source_restarts(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    feed, port = free_udp_port(), free_udp_port()
    first = source(feed, port)
    processes.append(first)
    processes.append(ffmpeg_publish(sample_ts, f"udp://127.0.0.1:{feed}?pkt_size=1316", loop=True))
    relay = relays(
        srt_endpoint("in", mode="caller", host="127.0.0.1", port=port, peer_idle_timeout_ms=2000),
        srt_endpoint("play", mode="listener", port=free_udp_port(), streamid="play"),
    )
    wait_until(lambda: relay.input.stats.meter.bytes > 50_000, 20, "media from the source")

    os.kill(first.pid, signal.SIGKILL)
    first.popen.wait(timeout=10)
    wait_until(lambda: relay.input.stats.state == "connecting", 15, "the loss to be noticed")
    assert relay.input.stats.disconnects == 1

    processes.append(source(feed, port))
    wait_until(lambda: relay.input.stats.state == "connected", 20, "the input to dial again")
    resumed = relay.input.stats.meter.bytes
    wait_until(lambda: relay.input.stats.meter.bytes > resumed + 50_000, 15, "media after the reconnect")
    assert relay.input.stats.connects == 2
