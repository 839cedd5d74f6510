"""The switcher splicing two real encoders' transport streams, checked byte by byte and by decoding
the result with ffmpeg."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_engine.config import FailoverSettings
from media_engine.splice import TsSplicer, random_access_index
from media_engine.switcher import Switcher
from media_engine.ts import PACKET, TsAnalyzer
from tests.media_engine.replay import Replay
from tests.media_engine.test_ts import packet, pat
from tests.peers.media import BARS_LUMA, decode_problems, left_edge_luma

MESSAGE = 7 * PACKET
BACKUP_TSID = 2


@pytest.fixture(scope="module")
def bars_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second encoder: other pictures (noisy, to fill its bitrate), other tone, the same PIDs."""
    path = tmp_path_factory.mktemp("splice") / "bars.ts"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "smptebars=size=320x240:rate=25,noise=alls=20:allf=t",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "800k",
            "-c:a", "aac", "-mpegts_transport_stream_id", str(BACKUP_TSID), "-f", "mpegts", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def messages(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    for offset in range(0, len(data), MESSAGE):
        yield data[offset : offset + MESSAGE]


def analysed(path: Path) -> Iterator[tuple[bytes, TsAnalyzer]]:
    analyzer = TsAnalyzer()
    for message in messages(path):
        analyzer.feed(message)
        yield message, analyzer


def splice(first: Path, second: Path, *, after: int, planned: bool) -> tuple[bytes, int]:
    """``after`` messages of the first stream, then the second, switched by the switcher; the
    second runs alongside from a third of its length (hot standby). Returns the output and the
    byte offset where the second stream starts in it."""
    out = bytearray()
    sources = [Replay("main"), Replay("backup")]
    switcher = Switcher(
        "test", sources, FailoverSettings(), forward=lambda data, length: out.extend(bytes(data)[:length])
    )
    for index, source in enumerate(sources):
        source.start(switcher.sink(index))
    main, backup = list(messages(first)), list(messages(second))
    backup = backup[len(backup) // 3 :]
    for step in range(after):
        main_message, backup_message = main[step], backup.pop(0)
        sources[0].send(main_message)
        sources[1].send(backup_message)
    switcher.tick()
    assert switcher.snapshot()["active"] == "main"
    before = len(out)
    if planned:
        switcher.pin("backup")
        switcher.tick()
        step = after
        while switcher.switches == 0:
            sources[0].send(main[step])
            sources[1].send(backup.pop(0))
            step += 1
    else:
        time.sleep(0.35)  # the main encoder fell silent: past the 300 ms timeout
        sources[1].send(backup.pop(0))
        switcher.tick()
        assert switcher.switches == 1
        assert "no data for" in switcher.last_switch["reason"]  # type: ignore[index]
    for message in backup:
        sources[1].send(message)
    return bytes(out), first_backup_pat(bytes(out), before)


def first_backup_pat(data: bytes, start: int) -> int:
    for offset in range(start - start % PACKET, len(data), PACKET):
        if data[offset + 1 : offset + 3] == b"\x40\x00" and data[offset + 8] << 8 | data[offset + 9] == BACKUP_TSID:
            return offset
    raise AssertionError("no PAT of the backup encoder in the output")


def test_a_planned_switch_at_a_random_access_point_decodes_without_a_single_error(
    sample_ts: Path, bars_ts: Path, tmp_path: Path
) -> None:
    output, switched_at = splice(sample_ts, bars_ts, after=300, planned=True)
    checked = TsAnalyzer()
    checked.feed(output)
    assert checked.counters.cc_errors == 0, "continuity counters run on across the switch"
    assert checked.counters.sync_errors == 0

    first = [output[switched_at + n * PACKET : switched_at + (n + 1) * PACKET] for n in range(3)]
    assert [(p[1] & 0x1F) << 8 | p[2] for p in first[:2]] == [0x0000, 0x1000], "PAT then PMT come first"
    after = [output[o : o + PACKET] for o in range(switched_at + 2 * PACKET, len(output), PACKET)]
    first_pcr = next(p for p in after if p[3] & 0x20 and p[4] > 0 and p[5] & 0x10)
    assert first_pcr[5] & 0x80, "the first PCR after the switch is flagged as a discontinuity"
    assert first_pcr[5] & 0x40, "the new input starts on a random-access point"

    path = tmp_path / "spliced.ts"
    path.write_bytes(output)
    assert decode_problems(path, switched=True) == []
    pictures = ["bars" if luma > BARS_LUMA else "main" for luma in left_edge_luma(path)]
    switch = pictures.index("bars")
    assert switch >= 60, "about three seconds of the main encoder's pictures"
    assert pictures[switch:] == ["bars"] * (len(pictures) - switch), "then only the backup's"
    assert len(pictures) - switch >= 20


def test_a_sudden_switch_starts_every_stream_at_a_unit_start_and_recovers_within_a_gop(
    sample_ts: Path, bars_ts: Path, tmp_path: Path
) -> None:
    output, switched_at = splice(sample_ts, bars_ts, after=301, planned=False)
    checked = TsAnalyzer()
    checked.feed(output)
    assert checked.counters.cc_errors == 0
    seen: set[int] = set()
    for offset in range(switched_at, len(output), PACKET):
        pid = (output[offset + 1] & 0x1F) << 8 | output[offset + 2]
        if pid not in seen:
            assert output[offset + 1] & 0x40, f"PID {pid:#x} resumes mid-way through a PES or section"
            seen.add(pid)
    path = tmp_path / "sudden.ts"
    path.write_bytes(output)
    # The backup joins mid-GOP: its video resumes at its next keyframe (decoders hold the last
    # picture meanwhile), so nothing undecodable reaches them.
    assert decode_problems(path, switched=True) == []
    pictures = ["bars" if luma > BARS_LUMA else "main" for luma in left_edge_luma(path)]
    assert pictures[:60] == ["main"] * 60
    assert pictures[-20:] == ["bars"] * 20


def test_counters_are_rebased_per_pid_and_a_new_pid_keeps_its_own() -> None:
    splicer = TsSplicer()
    before = pat(0x1000, cc=4) + packet(0x100, 7, start=True) + packet(0x100, 8)
    splicer.process(before, len(before))
    on_air = TsAnalyzer()
    on_air.feed(before)
    psi = splicer.switch([pat(0x1000, cc=11)], on_air.continuity(), {})
    assert psi is not None
    assert bytes(psi[0])[3] & 0x0F == 5, "the injected PAT continues at 4 + 1"
    # Mid-PES packets of PID 0x100 are dropped; the first unit start continues at 8 + 1.
    after = packet(0x100, 2) + packet(0x100, 3, start=True) + packet(0x100, 4) + packet(0x200, 9, start=True)
    chunk, length = splicer.process(after, len(after))
    out = bytes(chunk)[:length]
    assert [(out[o + 1] & 0x1F) << 8 | out[o + 2] for o in range(0, length, PACKET)] == [0x100, 0x100, 0x200]
    assert [out[o + 3] & 0x0F for o in range(0, length, PACKET)] == [9, 10, 9]


def test_random_access_is_found_only_on_video_keyframes(sample_ts: Path) -> None:
    keyframes = 0
    for message, analyzer in analysed(sample_ts):
        if analyzer.video_pids and random_access_index(message, len(message), analyzer.video_pids) is not None:
            keyframes += 1
    assert analyzer.video_pids == {0x100: 0x1B}, "H.264 on PID 0x100, as the PMT says"
    assert 7 <= keyframes <= 9, "one keyframe a second in an 8 s stream with a 25-frame GOP"
