"""libsrt's per-socket statistics (``SRT_TRACEBSTATS``, srt.h of libsrt 1.5) and a plain snapshot.

The field order and types mirror the C struct exactly; ``library.check_version`` refuses a libsrt
whose layout could differ.
"""

from __future__ import annotations

import ctypes
from typing import Any

i32 = ctypes.c_int
i64 = ctypes.c_int64
u64 = ctypes.c_uint64
f64 = ctypes.c_double


class TraceBStats(ctypes.Structure):
    # Later 1.x releases append fields; srt_bstats writes the library's whole struct, so the buffer
    # handed to it is this much larger than what we declare.
    BUFFER_SIZE = 2048

    _fields_ = [
        ("msTimeStamp", i64),
        ("pktSentTotal", i64),
        ("pktRecvTotal", i64),
        ("pktSndLossTotal", i32),
        ("pktRcvLossTotal", i32),
        ("pktRetransTotal", i32),
        ("pktSentACKTotal", i32),
        ("pktRecvACKTotal", i32),
        ("pktSentNAKTotal", i32),
        ("pktRecvNAKTotal", i32),
        ("usSndDurationTotal", i64),
        ("pktSndDropTotal", i32),
        ("pktRcvDropTotal", i32),
        ("pktRcvUndecryptTotal", i32),
        ("byteSentTotal", u64),
        ("byteRecvTotal", u64),
        ("byteRcvLossTotal", u64),
        ("byteRetransTotal", u64),
        ("byteSndDropTotal", u64),
        ("byteRcvDropTotal", u64),
        ("byteRcvUndecryptTotal", u64),
        ("pktSent", i64),
        ("pktRecv", i64),
        ("pktSndLoss", i32),
        ("pktRcvLoss", i32),
        ("pktRetrans", i32),
        ("pktRcvRetrans", i32),
        ("pktSentACK", i32),
        ("pktRecvACK", i32),
        ("pktSentNAK", i32),
        ("pktRecvNAK", i32),
        ("mbpsSendRate", f64),
        ("mbpsRecvRate", f64),
        ("usSndDuration", i64),
        ("pktReorderDistance", i32),
        ("pktRcvAvgBelatedTime", f64),
        ("pktRcvBelated", i64),
        ("pktSndDrop", i32),
        ("pktRcvDrop", i32),
        ("pktRcvUndecrypt", i32),
        ("byteSent", u64),
        ("byteRecv", u64),
        ("byteRcvLoss", u64),
        ("byteRetrans", u64),
        ("byteSndDrop", u64),
        ("byteRcvDrop", u64),
        ("byteRcvUndecrypt", u64),
        ("usPktSndPeriod", f64),
        ("pktFlowWindow", i32),
        ("pktCongestionWindow", i32),
        ("pktFlightSize", i32),
        ("msRTT", f64),
        ("mbpsBandwidth", f64),
        ("byteAvailSndBuf", i32),
        ("byteAvailRcvBuf", i32),
        ("mbpsMaxBW", f64),
        ("byteMSS", i32),
        ("pktSndBuf", i32),
        ("byteSndBuf", i32),
        ("msSndBuf", i32),
        ("msSndTsbPdDelay", i32),
        ("pktRcvBuf", i32),
        ("byteRcvBuf", i32),
        ("msRcvBuf", i32),
        ("msRcvTsbPdDelay", i32),
        ("pktSndFilterExtraTotal", i32),
        ("pktRcvFilterExtraTotal", i32),
        ("pktRcvFilterSupplyTotal", i32),
        ("pktRcvFilterLossTotal", i32),
        ("pktSndFilterExtra", i32),
        ("pktRcvFilterExtra", i32),
        ("pktRcvFilterSupply", i32),
        ("pktRcvFilterLoss", i32),
        ("pktReorderTolerance", i32),
        ("pktSentUniqueTotal", i64),
        ("pktRecvUniqueTotal", i64),
        ("byteSentUniqueTotal", u64),
        ("byteRecvUniqueTotal", u64),
        ("pktSentUnique", i64),
        ("pktRecvUnique", i64),
        ("byteSentUnique", u64),
        ("byteRecvUnique", u64),
    ]


def read_stats(buffer: ctypes.Array) -> TraceBStats:
    return TraceBStats.from_buffer(buffer)


def new_buffer() -> ctypes.Array:
    return ctypes.create_string_buffer(TraceBStats.BUFFER_SIZE)


def snapshot(stats: TraceBStats) -> dict[str, Any]:
    """The figures an operator reads, with units in the names."""
    return {
        "rtt_ms": round(stats.msRTT, 3),
        "bandwidth_mbps": round(stats.mbpsBandwidth, 3),
        "send_rate_mbps": round(stats.mbpsSendRate, 3),
        "recv_rate_mbps": round(stats.mbpsRecvRate, 3),
        "packets_sent": stats.pktSentTotal,
        "packets_received": stats.pktRecvTotal,
        "packets_sent_unique": stats.pktSentUniqueTotal,
        "packets_received_unique": stats.pktRecvUniqueTotal,
        "bytes_sent": stats.byteSentTotal,
        "bytes_received": stats.byteRecvTotal,
        "packets_lost_send": stats.pktSndLossTotal,
        "packets_lost_recv": stats.pktRcvLossTotal,
        "packets_retransmitted": stats.pktRetransTotal,
        "packets_retransmitted_recv": stats.pktRcvRetrans,
        "packets_dropped_send": stats.pktSndDropTotal,
        "packets_dropped_recv": stats.pktRcvDropTotal,
        "packets_undecrypted": stats.pktRcvUndecryptTotal,
        "nak_sent": stats.pktSentNAKTotal,
        "nak_received": stats.pktRecvNAKTotal,
        "send_buffer_ms": stats.msSndBuf,
        "recv_buffer_ms": stats.msRcvBuf,
        "send_tsbpd_delay_ms": stats.msSndTsbPdDelay,
        "recv_tsbpd_delay_ms": stats.msRcvTsbPdDelay,
        "flight_size": stats.pktFlightSize,
        "mss": stats.byteMSS,
    }
