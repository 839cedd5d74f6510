"""A dead destination never stops the others, and stopping never hangs on a blocked call."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from media_engine.relay import Relay
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import ffmpeg_publish, ffmpeg_srt_url, free_udp_port, slt_to_file, slt_url, wait_until
from tests.support.processes import RunningProcess


def test_killed_receiver_does_not_stop_the_other_output(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ingest, alive_port, doomed_port = free_udp_port(), free_udp_port(), free_udp_port()
    alive_file, doomed_file = tmp_path / "alive.ts", tmp_path / "doomed.ts"
    alive = slt_to_file(slt_url("", alive_port, mode="listener"), alive_file)
    doomed = slt_to_file(slt_url("", doomed_port, mode="listener"), doomed_file)
    processes.extend([alive, doomed])
    relay = relays(
        srt_endpoint("in", mode="listener", port=ingest, streamid="cam"),
        srt_endpoint("alive", mode="caller", host="127.0.0.1", port=alive_port, peer_idle_timeout_ms=2000),
        srt_endpoint("doomed", mode="caller", host="127.0.0.1", port=doomed_port, peer_idle_timeout_ms=2000),
    )
    alive_out, doomed_out = relay.outputs
    wait_until(lambda: alive_out.stats.state == doomed_out.stats.state == "connected", 15, "both outputs")
    processes.append(ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", ingest, streamid="cam"), loop=True))
    wait_until(lambda: doomed_out.stats.meter.bytes > 100_000, 20, "media on both outputs")

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.popen.wait(timeout=10)
    before = alive_out.stats.meter.bytes
    wait_until(lambda: doomed_out.stats.state != "connected", 15, "the dead output to be noticed")
    assert "connection" in doomed_out.stats.reason.lower()
    time.sleep(2)
    assert alive_out.stats.meter.bytes > before + 100_000, "the live output must keep flowing"
    assert alive_out.stats.state == "connected"
    assert relay.input.stats.state == "connected"

    # The destination comes back: the output redials it by itself and media flows again.
    processes.append(slt_to_file(slt_url("", doomed_port, mode="listener"), tmp_path / "back.ts"))
    wait_until(lambda: doomed_out.stats.state == "connected", 20, "the output to reconnect")
    resumed = doomed_out.stats.meter.bytes
    wait_until(lambda: doomed_out.stats.meter.bytes > resumed + 100_000, 10, "media to the restarted receiver")
    assert doomed_out.stats.connects == 2


def test_stop_unblocks_a_listener_nobody_called_and_a_caller_still_dialling(relays: Callable[..., Relay]) -> None:
    relay = relays(
        srt_endpoint("waiting", mode="listener", port=free_udp_port(), streamid="cam"),
        # Nothing answers here: the output sits in a blocking connect with a long timeout.
        srt_endpoint("dialling", mode="caller", host="127.0.0.1", port=free_udp_port(), connect_timeout_ms=30000),
    )
    time.sleep(0.5)
    started = time.monotonic()
    relay.stop()
    assert time.monotonic() - started < 5
    assert relay.outputs[0].stats.state == "stopped"
    assert relay.input.stats.state == "stopped"
