"""Packet-level MPEG-TS checks on streams built byte by byte."""

from __future__ import annotations

from pathlib import Path

from media_engine.ts import TsAnalyzer


def packet(pid: int, cc: int, *, start: bool = False, payload: bytes = b"", discontinuity: bool = False) -> bytes:
    b1 = (0x40 if start else 0) | (pid >> 8)
    # With the discontinuity flag: an adaptation field of length 1 carrying only that flag.
    flagged = bytes([0x47, b1, pid & 0xFF, 0x30 | cc, 1, 0x80])
    header = flagged if discontinuity else bytes([0x47, b1, pid & 0xFF, 0x10 | cc])
    return (header + payload).ljust(188, b"\xff")


def pat(pmt_pid: int, cc: int = 0) -> bytes:
    section = bytes([0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xE0 | (pmt_pid >> 8), pmt_pid & 0xFF, 0, 0, 0, 0])
    return packet(0, cc, start=True, payload=b"\x00" + section)


def test_clean_stream_counts_packets_pat_and_pmt() -> None:
    analyzer = TsAnalyzer()
    stream = pat(0x1000) + packet(0x1000, 0, start=True) + b"".join(packet(0x100, cc % 16) for cc in range(40))
    analyzer.feed(stream)
    counters = analyzer.counters
    assert (counters.packets, counters.cc_errors, counters.sync_errors) == (42, 0, 0)
    assert (counters.pat_seen, counters.pmt_seen, counters.pmt_pids) == (1, 1, {0x1000})


def test_a_lost_packet_is_a_continuity_error_but_a_duplicate_is_not() -> None:
    analyzer = TsAnalyzer()
    analyzer.feed(packet(0x100, 3) + packet(0x100, 4) + packet(0x100, 4) + packet(0x100, 6))
    assert analyzer.counters.cc_errors == 1


def test_a_flagged_discontinuity_is_not_an_error() -> None:
    analyzer = TsAnalyzer()
    analyzer.feed(packet(0x100, 3) + packet(0x100, 9, discontinuity=True) + packet(0x100, 10))
    assert analyzer.counters.cc_errors == 0


def test_garbage_is_counted_as_sync_loss() -> None:
    analyzer = TsAnalyzer()
    analyzer.feed(packet(0x100, 0) + b"\x00" * 188 + packet(0x100, 1))
    analyzer.feed(b"not a transport stream")
    assert analyzer.counters.sync_errors == 2
    assert analyzer.counters.packets == 2


def test_real_ffmpeg_output_is_clean(sample_ts: Path) -> None:
    data = sample_ts.read_bytes()
    analyzer = TsAnalyzer()
    for offset in range(0, len(data), 1316):
        analyzer.feed(data[offset : offset + 1316])
    assert analyzer.counters.cc_errors == 0
    assert analyzer.counters.sync_errors == 0
    assert analyzer.counters.packets == len(data) // 188
    assert analyzer.counters.pmt_seen > 0
