"""HLS and recording outputs with real peers.

ffmpeg publishes over SRT into an in-process relay whose outputs write files; ffprobe and ffmpeg
read what they wrote, as a player or an operator fetching a recording would. Bounds are loose on
purpose: they tell a working cutter from a broken one, not a fast machine from a slow one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from media_engine.config import EndpointConfig
from media_engine.outputs.hls import HlsOutput
from media_engine.outputs.recording import RecordingOutput, list_recordings
from media_engine.relay import Relay
from media_engine.segmenter import IDLE_CLOSE_S, QUEUE_MESSAGES
from tests.media_engine.conftest import srt_endpoint
from tests.peers import ts_check
from tests.peers.media import (
    BARS_LUMA,
    decode_problems,
    duration_s,
    ffmpeg_live_encoder,
    ffmpeg_publish,
    ffmpeg_srt_url,
    free_udp_port,
    left_edge_luma,
    wait_until,
)
from tests.support.processes import RunningProcess

MAIN, BACKUP = 10, 20  # the encoders' transport_stream_id
MESSAGE = 7 * 188


def file_endpoint(protocol: str, directory: Path, name: str = "out", **options: object) -> EndpointConfig:
    return EndpointConfig(
        id=name, name=name, protocol=protocol, url=str(directory), options={k: str(v) for k, v in options.items()}
    )


@dataclass
class Playlist:
    target_duration: int
    media_sequence: int
    discontinuity_sequence: int
    segments: list[tuple[float, str, bool]]  # EXTINF duration, URI, preceded by a discontinuity

    @property
    def durations(self) -> list[float]:
        return [duration for duration, _, _ in self.segments]


def read_playlist(path: Path) -> Playlist:
    lines = path.read_text().splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"], lines
    values = dict(line[1:].split(":", 1) for line in lines if line.startswith("#EXT-X-") and ":" in line)
    segments, duration, discontinuity = [], None, False
    for line in lines:
        if line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#"):
            assert duration is not None, f"{line} has no #EXTINF"
            segments.append((duration, line, discontinuity))
            duration, discontinuity = None, False
    return Playlist(
        int(values["EXT-X-TARGETDURATION"]),
        int(values["EXT-X-MEDIA-SEQUENCE"]),
        int(values.get("EXT-X-DISCONTINUITY-SEQUENCE", "0")),
        segments,
    )


def codec_names(path: Path) -> set[str]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"ffprobe cannot read {path}: {result.stderr}"
    return {stream["codec_name"] for stream in json.loads(result.stdout)["streams"]}


def copy_listed(playlist: Playlist, directory: Path, target: Path) -> list[Path]:
    """Copies of the listed segments, taken before the output deletes them."""
    target.mkdir(exist_ok=True)
    return [Path(shutil.copy(directory / name, target / name)) for _, name, _ in playlist.segments]


def stop_gracefully(process: RunningProcess) -> None:
    """Ctrl-C, as an operator stops an encoder: ffmpeg ends its last frame before it exits."""
    process.popen.send_signal(signal.SIGINT)
    process.popen.wait(timeout=20)


def kill(process: RunningProcess) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.popen.wait(timeout=10)


def pictures(path: Path) -> list[str]:
    return ["bars" if luma > BARS_LUMA else "main" for luma in left_edge_luma(path)]


def first_picture_packets(path: Path) -> list[ts_check.Packet]:
    packets = ts_check.parse(path.read_bytes(), allow_partial_tail=True)
    assert packets[0].pid == 0, "a file starts with the PAT"
    assert packets[1].pid in ts_check.pmt_pids(packets[:1]).values(), "then the PMT"
    assert packets[2].pusi, "then a picture"
    assert packets[2].random_access, "a keyframe"
    return packets


# HLS


def test_hls_playlist_lists_segments_that_each_play_alone_and_the_directory_stays_bounded(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay], tmp_path: Path
) -> None:
    port, directory = free_udp_port(), tmp_path / "hls"
    relay = relays(
        srt_endpoint("in", mode="listener", port=port),
        file_endpoint("hls", directory, segment_s=1, playlist_size=3),
    )
    output = relay.outputs[0]
    assert isinstance(output, HlsOutput)
    processes.append(ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port), loop=True))
    index = directory / "index.m3u8"
    wait_until(lambda: index.exists() and len(read_playlist(index).segments) == 3, 40, "a full playlist")

    first = read_playlist(index)
    copies = copy_listed(first, directory, tmp_path / "copies")
    assert {"h264", "aac"} <= codec_names(index), "a player reading the playlist finds both streams"
    for copy in copies:
        assert codec_names(copy) == {"h264", "aac"}
        assert decode_problems(copy) == [], f"{copy.name} decodes on its own"
        first_picture_packets(copy)

    files_on_disk, sequences, durations = [], [], []
    watch_until = time.monotonic() + 15
    while time.monotonic() < watch_until:
        files_on_disk.append(len(list(directory.glob("*.ts"))))
        playlist = read_playlist(index)
        sequences.append(playlist.media_sequence)
        durations += playlist.durations
        assert len(playlist.segments) == 3
        assert playlist.target_duration >= max(round(d) for d in playlist.durations)
        time.sleep(0.5)

    # Listed, kept a while for players still fetching, one being written, one finishing its PES.
    bound = output.playlist_size + output.grace_segments + 2
    assert max(files_on_disk) <= bound, f"{max(files_on_disk)} segments on disk, at most {bound} expected"
    assert sequences == sorted(sequences)
    assert sequences[-1] >= first.media_sequence + 6, "the playlist moves on, one segment a second"
    assert all(0.4 <= d <= 2.5 for d in durations), durations  # 1 s GOP, 1 s target
    assert 0.8 <= sum(durations) / len(durations) <= 1.4, durations
    assert not any(discontinuity for _, _, discontinuity in read_playlist(index).segments)


def feed(output: HlsOutput | RecordingOutput, path: Path) -> None:
    """A whole file through ``offer`` at once, in the relay's 1316-byte messages."""
    data = path.read_bytes()
    for offset in range(0, len(data), MESSAGE):
        chunk = data[offset : offset + MESSAGE]
        output.offer(chunk, len(chunk))


def test_a_restarted_hls_output_numbers_on_and_marks_the_discontinuity(sample_ts: Path, tmp_path: Path) -> None:
    directory = tmp_path / "hls"
    numbers = []
    for _ in range(2):
        output = HlsOutput(file_endpoint("hls", directory, segment_s=2, playlist_size=3))
        output.start()
        feed(output, sample_ts)  # faster than real time: durations come from the PCR
        output.stop()
        assert output.stats.dropped_messages == 0
        playlist = read_playlist(directory / "index.m3u8")
        numbers.append([int(name[len("segment-") : -len(".ts")]) for _, name, _ in playlist.segments])
        assert all(abs(d - 2.0) < 0.05 for d in playlist.durations[:-1]), playlist.durations
    first_run, second_run = numbers
    assert second_run[0] > first_run[-1], "the second run goes on numbering"
    assert playlist.media_sequence == second_run[0]
    # The second run's first segment (now gone from the list) followed a discontinuity.
    assert playlist.discontinuity_sequence == 1
    on_disk = sorted(int(p.stem.split("-")[1]) for p in directory.glob("segment-*.ts"))
    assert on_disk[0] >= playlist.media_sequence - output.grace_segments


def test_offer_never_waits_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    output = RecordingOutput(file_endpoint("file", tmp_path / "recordings"))
    message = bytes(MESSAGE)
    for _ in range(QUEUE_MESSAGES + 100):  # not started: nothing takes from the queue
        output.offer(message, len(message))
    assert output.stats.dropped_messages == 100
    assert output.snapshot()["queued_messages"] == QUEUE_MESSAGES


def test_a_directory_that_cannot_be_written_is_reported(sample_ts: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    output = HlsOutput(file_endpoint("hls", blocked / "hls"))
    output.start()
    feed(output, sample_ts)
    wait_until(lambda: output.stats.state == "error", 10, "the error reported")
    assert "a-file" in output.stats.reason
    output.stop()
    assert output.stats.state == "stopped"


# recordings


def record(
    relays: Callable[..., Relay], processes: list[RunningProcess], sample_ts: Path, directory: Path, **options: object
) -> tuple[RecordingOutput, RunningProcess]:
    port = free_udp_port()
    relay = relays(srt_endpoint("in", mode="listener", port=port), file_endpoint("file", directory, **options))
    output = relay.outputs[0]
    assert isinstance(output, RecordingOutput)
    publisher = ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port), loop=True)
    processes.append(publisher)
    wait_until(lambda: output.stats.state == "connected", 30, "the first recording file")
    return output, publisher


def test_a_recording_rotates_at_keyframes_into_files_that_each_play_alone(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay], tmp_path: Path
) -> None:
    directory = tmp_path / "recordings"
    output, publisher = record(relays, processes, sample_ts, directory, rotate_s=3)
    started = time.monotonic()
    time.sleep(10)
    stop_gracefully(publisher)
    ran = time.monotonic() - started
    time.sleep(1)  # the last messages through SRT's latency window
    output.stop()

    recordings = list_recordings(directory)
    assert len(recordings) >= 3, recordings
    assert [r["name"] for r in recordings] == sorted(p.name for p in directory.iterdir())
    assert all(re.fullmatch(r"out-\d{8}T\d{6}Z\.ts", r["name"]) for r in recordings)
    assert all(r["size"] > 0 and r["started"].tzinfo is not None for r in recordings)
    durations = []
    for recording in recordings:
        path = directory / recording["name"]
        assert decode_problems(path) == [], f"{path.name} decodes on its own"
        assert codec_names(path) == {"h264", "aac"}
        first_picture_packets(path)
        durations.append(duration_s(path))
    assert all(2.0 <= d <= 5.0 for d in durations[:-1]), durations
    assert abs(sum(durations) - ran) < 3.0, f"{durations} over a {ran:.1f} s run"


def test_retention_keeps_the_newest_files_besides_the_one_being_written(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay], tmp_path: Path
) -> None:
    directory = tmp_path / "recordings"
    output, publisher = record(relays, processes, sample_ts, directory, rotate_s=2, keep_files=2)
    seen: set[str] = set()
    most = 0
    watch_until = time.monotonic() + 11
    while time.monotonic() < watch_until:
        names = {p.name for p in directory.glob("*.ts")}
        seen |= names
        most = max(most, len(names))
        time.sleep(0.2)
    stop_gracefully(publisher)
    output.stop()

    # keep_files 2: two finished files, plus the one being written while the recording runs.
    assert most <= 3, most
    assert output.files_started >= 5
    left = sorted(p.name for p in directory.glob("*.ts"))
    assert left == sorted(seen)[-3:], "the oldest went first"
    assert output.files_deleted == output.files_started - 3


def test_retention_by_age_at_start_deletes_only_this_outputs_old_files(tmp_path: Path) -> None:
    directory = tmp_path / "recordings"
    directory.mkdir()
    two_hours_ago = time.time() - 7200
    old_mine, recent_mine = directory / "out-20200101T000000Z.ts", directory / "out-20200101T010000Z.ts"
    old_other, unrelated = directory / "other-20200101T000000Z.ts", directory / "notes.txt"
    for path in (old_mine, recent_mine, old_other, unrelated):
        path.write_bytes(b"x")
    for path in (old_mine, old_other, unrelated):
        os.utime(path, (two_hours_ago, two_hours_ago))

    output = RecordingOutput(file_endpoint("file", directory, keep_hours=1))
    output.start()
    wait_until(lambda: not old_mine.exists(), 10, "retention at start")
    output.stop()
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in (recent_mine, old_other, unrelated))
    assert [r["name"] for r in list_recordings(directory, prefix="out")] == [recent_mine.name]
    assert [r["name"] for r in list_recordings(directory)] == [old_other.name, recent_mine.name]


def encoder(port: int, streamid: str | None, tsid: int, pattern: str, tone: int) -> RunningProcess:
    options = {"streamid": streamid} if streamid else {}
    return ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", port, **options), tsid=tsid, tone_hz=tone, pattern=pattern)


def test_a_recording_and_hls_go_on_across_a_failover_switch(
    processes: list[RunningProcess], relays: Callable[..., Relay], tmp_path: Path
) -> None:
    ingest, recordings, hls = free_udp_port(), tmp_path / "recordings", tmp_path / "hls"
    relay = relays(
        (
            srt_endpoint("main", mode="listener", port=ingest, streamid="main"),
            srt_endpoint("backup", mode="listener", port=ingest, streamid="backup"),
        ),
        file_endpoint("file", recordings, rotate_s=600),
        file_endpoint("hls", hls, name="hls", segment_s=1, playlist_size=20),
    )
    state = relay.switcher.snapshot
    main = encoder(ingest, "main", MAIN, "testsrc2", 1000)
    processes.append(main)
    wait_until(lambda: state()["active"] == "main", 20, "main on air")
    processes.append(encoder(ingest, "backup", BACKUP, "smptebars", 440))
    wait_until(lambda: all(h["healthy"] for h in state()["health"].values()), 20, "both inputs healthy")
    time.sleep(3)

    kill(main)
    wait_until(lambda: state()["active"] == "backup", 10, "the backup on air")
    time.sleep(4)
    for output in relay.outputs:
        output.stop()

    [recording] = list_recordings(recordings)
    path = recordings / recording["name"]
    packets = first_picture_packets(path)
    assert [s.transport_stream_id for s in ts_check.segments(packets)] == [MAIN, BACKUP], "one file, both encoders"
    assert len(decode_problems(path, switched=True)) < 50
    seen = pictures(path)
    assert seen.count("main") >= 50, "the main encoder's pictures are in the file"
    assert seen.count("bars") >= 50, "and the backup's"

    # HLS: the switch is announced to players, and the segment after it starts on the backup's keyframe.
    playlist = read_playlist(hls / "index.m3u8")
    flagged = [name for _, name, discontinuity in playlist.segments if discontinuity]
    assert len(flagged) == 1, playlist.segments
    assert decode_problems(hls / flagged[0]) == []
    assert set(pictures(hls / flagged[0])) == {"bars"}
    assert all(d <= playlist.target_duration + 0.5 for d in playlist.durations), playlist.segments


def test_a_recording_goes_on_across_an_encoder_restart_and_hls_ends_the_segment_before_the_outage(
    processes: list[RunningProcess], relays: Callable[..., Relay], tmp_path: Path
) -> None:
    port, directory, hls = free_udp_port(), tmp_path / "recordings", tmp_path / "hls"
    relay = relays(
        srt_endpoint("in", mode="listener", port=port),
        file_endpoint("file", directory, rotate_s=600),
        file_endpoint("hls", hls, name="hls", segment_s=1, playlist_size=20),
    )
    source = relay.input
    first = encoder(port, None, MAIN, "testsrc2", 1000)
    processes.append(first)
    wait_until(lambda: relay.outputs[0].stats.state == "connected", 30, "the recording")
    time.sleep(3)

    kill(first)
    # Long enough for HLS to publish what came before the outage (IDLE_CLOSE_S).
    wait_until(lambda: time.monotonic() - (source.last_data_at or 0) > IDLE_CLOSE_S + 1, 15, "silence")
    before = source.stats.meter.bytes
    processes.append(encoder(port, None, BACKUP, "smptebars", 440))
    wait_until(lambda: source.stats.meter.bytes > before + 200_000, 30, "the restarted encoder's stream")
    time.sleep(2)
    for output in relay.outputs:
        output.stop()

    [recording] = list_recordings(directory)
    path = directory / recording["name"]
    packets = first_picture_packets(path)
    runs = ts_check.segments(packets)
    assert [s.transport_stream_id for s in runs] == [MAIN, BACKUP], "one file across the restart"
    # The restarted encoder's new clock is flagged in the file, as a switch would have flagged it.
    assert ts_check.first_pcr_after(packets, runs[1].first).discontinuity
    assert len(decode_problems(path, switched=True)) < 50
    seen = pictures(path)
    assert seen.count("main") >= 50, "pictures from before the restart"
    assert seen.count("bars") >= 25, "and after it"

    # HLS: the outage is not counted in any segment, and the restarted stream follows a discontinuity.
    playlist = read_playlist(hls / "index.m3u8")
    assert all(d <= 1.5 for d in playlist.durations), playlist.segments
    flagged = [index for index, (_, _, discontinuity) in enumerate(playlist.segments) if discontinuity]
    assert len(flagged) == 1, playlist.segments
    resumed = hls / playlist.segments[flagged[0]][1]
    assert decode_problems(resumed) == []
    assert set(pictures(resumed)) == {"bars"}
    assert set(pictures(hls / playlist.segments[flagged[0] - 1][1])) == {"main"}
