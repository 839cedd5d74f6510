"""The TS checker, the timed receiver and the live encoder, tried on real peers before failover
tests rely on them: ffmpeg makes the streams, srt-live-transmit carries them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import ts_check
from tests.peers.media import ffmpeg_live_encoder, ffmpeg_srt_url, free_udp_port, slt_url
from tests.peers.receiver import TimedReceiver
from tests.support.processes import RunningProcess, stop_process_tree

PRIMARY, BACKUP = 101, 202
H264, AAC_ADTS = 0x1B, 0x0F


def encode_file(path: Path, *, tsid: int, tone_hz: int, seconds: int = 2) -> bytes:
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "600k",
            "-c:a", "aac", "-f", "mpegts",
            "-mpegts_transport_stream_id", str(tsid), "-mpegts_service_id", str(tsid), str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("ts_check")
    return (
        encode_file(folder / "primary.ts", tsid=PRIMARY, tone_hz=440),
        encode_file(folder / "backup.ts", tsid=BACKUP, tone_hz=880),
    )


def packet(
    pid: int, cc: int, *, payload: bool = True, discontinuity: bool = False, pcr: int | None = None, data: bytes = b""
) -> bytes:
    """One hand-made packet, for the counter rules a real encoder never breaks on purpose."""
    adaptation = b""
    if discontinuity or pcr is not None or not payload:
        flags = (0x80 if discontinuity else 0) | (0x10 if pcr is not None else 0)
        body = bytes([flags])
        if pcr is not None:
            base, extension = divmod(pcr, 300)
            body += ((base << 15) | (0x3F << 9) | extension).to_bytes(6, "big")
        adaptation = bytes([len(body)]) + body
    control = (0x2 if adaptation else 0) | (0x1 if payload else 0)
    header = bytes([0x47, pid >> 8, pid & 0xFF, (control << 4) | cc])
    if not payload:
        adaptation = bytes([183]) + adaptation[1:].ljust(183, b"\xff")
    return (header + adaptation + data).ljust(188, b"\xff")


# the checker on files


def test_each_recording_is_clean_and_says_whose_it_is(recordings: tuple[bytes, bytes]) -> None:
    for data, tsid in zip(recordings, (PRIMARY, BACKUP), strict=True):
        packets = ts_check.parse(data)
        assert ts_check.continuity_errors(packets) == []
        assert ts_check.pcr_jumps(packets) == []
        assert [(segment.transport_stream_id, segment.last) for segment in ts_check.segments(packets)] == [
            (tsid, len(packets) - 1)
        ]
        pats = ts_check.pats(packets)
        assert {ts_check.pat_owner(section) for section in pats} == {ts_check.Owner(tsid, tsid)}
        assert ts_check.pat_owner(packets[pats[0].index]) == (tsid, tsid)
        assert ts_check.pmt_pids(packets) == {tsid: 0x1000}  # ffmpeg's default PMT PID
        pmts = ts_check.pmts(packets)
        assert all(section.crc_ok for section in [*pats, *pmts])
        table = ts_check.parse_pmt(pmts[0])
        assert table.program_number == tsid
        assert sorted(table.streams.values()) == [AAC_ADTS, H264]
        assert any(p.pid == table.pcr_pid and p.random_access for p in packets)


def test_a_raw_splice_is_found(recordings: tuple[bytes, bytes]) -> None:
    first, second = (ts_check.parse(data) for data in recordings)
    packets = ts_check.parse(recordings[0] + recordings[1])
    at = len(first)

    # Only the first packet of each PID after the seam can break its count, and does unless it
    # happens to continue the old counter.
    last_cc = {p.pid: p.cc for p in first}
    firsts = {}
    for p in second:
        firsts.setdefault(p.pid, p)
    expected = sorted(at + p.index for p in firsts.values() if p.pid in last_cc and p.cc != (last_cc[p.pid] + 1) % 16)
    assert expected, "the two recordings happen to continue each other's counters"
    assert ts_check.continuity_errors(packets) == expected

    segments = ts_check.segments(packets)
    assert [segment.transport_stream_id for segment in segments] == [PRIMARY, BACKUP]
    assert at <= segments[1].first < at + 10
    assert segments[0].last == segments[1].first - 1

    switch = ts_check.find_switch(packets, PRIMARY, BACKUP)
    assert switch.splice == at
    assert switch.last_pat < at <= switch.first_pat == segments[1].first
    assert (switch.from_owner, switch.to_owner) == ((PRIMARY, PRIMARY), (BACKUP, BACKUP))
    with pytest.raises(LookupError, match="no switch"):
        ts_check.find_switch(packets, BACKUP, PRIMARY)

    # Both files start their clocks at the same PCR, so the second goes back in time, unannounced.
    (jump,) = ts_check.pcr_jumps(packets)
    assert jump.index == ts_check.first_pcr_after(packets, at).index
    assert jump.step_ms < -1000
    assert not jump.discontinuity

    pat, pmt = ts_check.first_psi_after(packets, at)
    assert pat == switch.first_pat < pmt < at + 10
    assert ts_check.pat_owner(packets[pat]).transport_stream_id == BACKUP
    assert ts_check.pmt_pids(packets) == {PRIMARY: 0x1000, BACKUP: 0x1000}


def test_parse_fails_clearly_on_lost_sync(recordings: tuple[bytes, bytes]) -> None:
    data = recordings[0]
    with pytest.raises(ts_check.SyncError, match=r"lost sync at packet 10 \(byte offset 1880\)"):
        ts_check.parse(data[:1780] + data[1781:])  # a byte lost inside packet 9
    with pytest.raises(ts_check.SyncError, match="not a whole number"):
        ts_check.parse(data[:-1])
    assert len(ts_check.parse(data[:-1], allow_partial_tail=True)) == len(data) // 188 - 1


def test_a_damaged_table_fails_its_crc(recordings: tuple[bytes, bytes]) -> None:
    data = bytearray(recordings[0])
    pat = ts_check.pats(ts_check.parse(bytes(data)))[0]
    data[pat.index * 188 + 12] ^= 0x01  # inside the program loop
    assert not ts_check.pats(ts_check.parse(bytes(data)))[0].crc_ok


def test_continuity_rules() -> None:
    stream = b"".join(
        [
            packet(0x100, 14),
            packet(0x100, 15),
            packet(0x100, 15),  # one duplicate is allowed
            packet(0x100, 0),  # wraps
            packet(0x100, 0, payload=False),  # no payload: the counter stays
            packet(0x100, 1),
            packet(0x100, 1),
            packet(0x100, 1),  # a second duplicate is not
            packet(0x100, 9, discontinuity=True),  # announced
            packet(0x100, 10),
            packet(0x100, 12),  # one lost
            packet(0x100, 13),
            packet(0x100, 13, data=b"new"),  # the counter repeated, but not the packet
            packet(0x100, 14, payload=False),  # no payload, yet counted on
            packet(0x1FFF, 3),
            packet(0x1FFF, 3),  # the null PID is never counted
        ]
    )
    packets = ts_check.parse(stream)
    assert ts_check.continuity_errors(packets) == [7, 10, 12, 13]
    assert [p.discontinuity for p in packets].index(True) == 8


def test_pcr_jumps_and_announced_ones() -> None:
    second = 27_000_000
    stream = b"".join(
        [
            packet(0x100, 0, pcr=10 * second),
            packet(0x100, 1, pcr=10 * second + second // 25),
            packet(0x100, 2, pcr=3 * second),  # backwards
            packet(0x100, 3, pcr=3 * second + second // 5),  # 200 ms forwards
            packet(0x100, 4, pcr=50 * second, discontinuity=True),
            packet(0x100, 5, pcr=ts_check.PCR_WRAP - second // 50),
            packet(0x100, 6, pcr=second // 50),  # the 33-bit base wrapped: 40 ms
        ]
    )
    jumps = ts_check.pcr_jumps(ts_check.parse(stream))
    assert [(jump.index, round(jump.step_ms), jump.discontinuity) for jump in jumps] == [
        (2, -7040, False),
        (3, 200, False),
        (4, 46800, True),
        (5, -50020, False),
    ]
    assert ts_check.pcr_jumps(ts_check.parse(stream), max_step_ms=250)[1].index == 4


# the live encoder through the timed receiver


@pytest.fixture
def processes() -> Iterator[list[RunningProcess]]:
    started: list[RunningProcess] = []
    yield started
    for process in started:
        stop_process_tree(process)


@pytest.mark.parametrize("encoder_listens", [False, True], ids=["receiver-listens", "encoder-listens"])
def test_live_encoder_arrives_steadily(encoder_listens: bool, processes: list[RunningProcess], tmp_path: Path) -> None:
    port = free_udp_port()
    copy = tmp_path / "received.ts"
    if encoder_listens:
        processes.append(
            ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", port, mode="listener"), tsid=PRIMARY, tone_hz=440)
        )
        time.sleep(0.5)  # let it bind; an SRT caller also retries its handshake for a few seconds
        receiver = TimedReceiver(slt_url("127.0.0.1", port, latency="120"), file=copy)
    else:
        receiver = TimedReceiver(slt_url("", port, mode="listener", latency="120"), file=copy)
    with receiver:
        if not encoder_listens:
            processes.append(ffmpeg_live_encoder(ffmpeg_srt_url("127.0.0.1", port), tsid=PRIMARY, tone_hz=440))
        receiver.wait_bytes(50_000, timeout=30)
        time.sleep(0.5)  # past the start, where x264 and the SRT handshake settle
        steady_from = time.monotonic()
        time.sleep(2.5)
        steady_until = time.monotonic()
        # A live encoder sends every frame as it is made: about every 40 ms, never seconds apart.
        assert receiver.largest_gap(since=steady_from, until=steady_until) < 1.0, receiver.widest_gap(steady_from)

        stop_process_tree(processes.pop())
        stopped_at = time.monotonic()
        time.sleep(1.2)
        # An output that does not come back is one long gap, not none.
        assert receiver.largest_gap(since=stopped_at, until=time.monotonic()) > 1.0

    packets = ts_check.parse(receiver.data)
    assert copy.read_bytes() == receiver.data
    assert [segment.transport_stream_id for segment in ts_check.segments(packets)] == [PRIMARY]
    assert ts_check.continuity_errors(packets) == []
    assert ts_check.pcr_jumps(packets) == []

    later = receiver.packets_after(steady_from)
    assert later
    assert later[-1].index == packets[-1].index
    assert receiver.arrival_of(later[0].offset) > steady_from
    assert later[0].offset - 188 < receiver.offset_at(steady_from) <= later[0].offset

    # Nothing held back: the delay from the stream's own clock to arrival barely moves.
    delays = [
        receiver.arrival_of(p.offset) - p.pcr / ts_check.PCR_HZ
        for p in packets
        if p.pcr is not None and steady_from <= receiver.arrival_of(p.offset) <= steady_until
    ]
    assert len(delays) > 20
    assert max(delays) - min(delays) < 0.5
