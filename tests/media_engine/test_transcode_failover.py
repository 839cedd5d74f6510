"""A/V sync of a transcoded output across a failover between two live encoders.

Both encoders flash their picture white and beep at the same instants (the first 100 ms of each
second of their own clocks). The backup starts seconds later with timestamps 1000 s away, so the
switch splices in a stream whose clock has nothing to do with the first one. A viewer of the
transcoded output should see every flash together with its beep, before and after the switch,
on timestamps that run on without a jump.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from media_engine.config import TranscodeSettings
from media_engine.relay import Relay
from tests.media_engine.conftest import srt_endpoint
from tests.peers import av_check
from tests.peers.media import (
    decode_problems,
    ffmpeg_flash_encoder,
    ffmpeg_srt_url,
    free_udp_port,
    slt_url,
    wait_until,
)
from tests.peers.receiver import TimedReceiver
from tests.support.processes import RunningProcess

SYNC_S = 0.050
MAX_TIMESTAMP_GAP_S = 0.5
CUT_S = 0.5  # before the switch: the main encoder's last moments, cut short by its kill
BACKUP_BACKGROUND = 60  # mean luma of the backup's gray background; the main's is black (~16)


def backup(picture: av_check.Picture) -> bool:
    return picture.background_luma > BACKUP_BACKGROUND


@pytest.mark.parametrize("audio", ["aac", "copy"])
def test_flashes_and_beeps_stay_together_across_a_switch_to_an_encoder_with_another_clock(
    relays: Callable[..., Relay], processes: list[RunningProcess], tmp_path: Path, audio: str
) -> None:
    ingest, play = free_udp_port(), free_udp_port()
    rendition = TranscodeSettings(
        "sd", width=640, height=360, fps=30, video_bitrate_bps=800_000, preset="ultrafast", audio_codec=audio
    )
    player = replace(srt_endpoint("player", mode="listener", port=play), transcode=(rendition,))
    relay = relays(
        (
            srt_endpoint("main", mode="listener", port=ingest, streamid="main"),
            srt_endpoint("backup", mode="listener", port=ingest, streamid="backup"),
        ),
        player,
    )
    capture = tmp_path / "output.ts"
    receiver = TimedReceiver(slt_url("127.0.0.1", play), file=capture).start()
    state = relay.switcher.snapshot
    try:
        main = ffmpeg_flash_encoder(ffmpeg_srt_url("127.0.0.1", ingest, streamid="main"), tsid=10)
        processes.append(main)
        wait_until(lambda: state()["active"] == "main", 20, "the main encoder on air")
        time.sleep(3)
        backup_url = ffmpeg_srt_url("127.0.0.1", ingest, streamid="backup")
        processes.append(ffmpeg_flash_encoder(backup_url, tsid=20, background="0x505050", ts_offset_s=1000))
        wait_until(lambda: state()["health"]["backup"]["healthy"], 20, "the backup healthy")
        time.sleep(1.5)
        os.kill(main.pid, signal.SIGKILL)
        main.popen.wait(timeout=10)
        wait_until(lambda: state()["active"] == "backup", 10, "the backup on air")
        transcode = relay.snapshot()["outputs"][0]["transcode"]
        wait_until(
            lambda: relay.snapshot()["outputs"][0]["transcode"]["frames"] >= transcode["frames"] + 8 * 30,
            40,
            "eight seconds of pictures after the switch",
        )
        time.sleep(1)  # what the encoder holds back
    finally:
        receiver.stop()

    assert relay.snapshot()["outputs"][0]["state"] != "failed"
    pictures = av_check.pictures(capture)
    switched = next(picture.time_s for picture in pictures if backup(picture))
    assert sum(picture.time_s < switched for picture in pictures) > 60, "the main's pictures came first"

    flashes = [picture.time_s for picture in av_check.flash_onsets(pictures, backup)]
    beeps = av_check.beep_onsets(capture)
    after = [flash for flash in flashes if flash > switched]
    before = [flash for flash in flashes if flash < switched]
    assert len(after) >= 6, f"flashes after the switch at {switched:.2f}: {after}"
    assert len(before) >= 3
    # The main encoder is killed mid-stream: the flash it was drawing when it died may have lost its
    # pictures or its sound at the cut. Every flash before that, and every one after the switch,
    # must be in sync.
    judged = [flash for flash in flashes if flash < switched - CUT_S or flash > switched]
    offsets = {round(flash, 3): round(min(beeps, key=lambda beep: abs(beep - flash)) - flash, 3) for flash in judged}
    late = {flash: offset for flash, offset in offsets.items() if abs(offset) > SYNC_S}
    assert not late, f"sound and picture apart (flash time: beep minus flash, s), switch at {switched:.2f}: {offsets}"

    for kind in ("video", "audio"):
        times = av_check.timestamps(capture, kind)
        steps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(steps) > 0, f"{kind} timestamps go back"
        assert max(steps) < MAX_TIMESTAMP_GAP_S, f"{kind} timestamps jump by {max(steps):.2f} s"
    assert decode_problems(capture) == []
