"""``python -m media_engine relay``: one relay from the command line, for debugging without a database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.peers.media import (
    decode_problems,
    duration_s,
    ffmpeg_publish,
    ffmpeg_srt_url,
    finish,
    free_udp_port,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.support.processes import REPO_ROOT, RunningProcess, environment, start_process


def stats_lines(process: RunningProcess) -> list[dict]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def test_cli_relays_and_prints_stats(sample_ts: Path, tmp_path: Path, processes: list[RunningProcess]) -> None:
    ingest, play = free_udp_port(), free_udp_port()
    relay = start_process(
        [sys.executable, "-m", "media_engine", "relay", "--log-level", "WARNING", "--stats-interval", "0.5",
         "--input", f"srt://:{ingest}?streamid=cam&latency=120",
         "--output", f"srt://:{play}?mode=listener&streamid=play"],
        env=environment(),
        name="relay cli",
    )  # fmt: skip
    processes.append(relay)
    wait_until(lambda: stats_lines(relay), 15, "the first stats line")
    received = tmp_path / "played.ts"
    player = slt_to_file(slt_url("127.0.0.1", play, streamid="play"), received)
    processes.append(player)
    wait_until(lambda: stats_lines(relay)[-1]["outputs"][0]["readers"], 15, "the player to connect")
    encoder = ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", ingest, streamid="cam"))
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    finish(player, settle_s=2)

    assert duration_s(received) > duration_s(sample_ts) - 0.5
    assert decode_problems(received) == []
    busiest = max(stats_lines(relay), key=lambda line: line["inputs"][0]["bitrate_1s_bps"])
    assert busiest["inputs"][0]["bitrate_1s_bps"] > 100_000
    assert busiest["inputs"][0]["ts"]["cc_errors"] == 0
    relay.popen.send_signal(signal.SIGTERM)
    assert relay.popen.wait(timeout=15) == 0


def test_cli_refuses_a_bad_url_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "media_engine", "relay", "--input", "srt://:9000?latency=fast", "--output", "srt://x"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "latency must be a whole number" in result.stderr
