"""An independent MPEG-TS reader for what a test captured from the gateway's outputs.

It shares no code with ``media_engine`` on purpose: when the relay splices two encoders together,
this is the second opinion on whether the continuity counters, the tables and the PCR came out
right. It reads only what those checks need: packet headers, adaptation fields, PAT and PMT.

Telling encoders apart needs no decoding: ``ffmpeg_live_encoder`` gives each encoder its own
transport_stream_id and program number, which every PAT carries. So::

    packets = parse(capture)
    switch = find_switch(packets, from_tsid=1, to_tsid=2)
    assert continuity_errors(packets) == []
    pat, pmt = first_psi_after(packets, switch.splice)

Functions taking a packet index expect the list ``parse`` returned (or a slice of it): indices
are positions in the whole capture.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF
PAT_TABLE = 0x00
PMT_TABLE = 0x02
PCR_HZ = 27_000_000
# A PCR is a 33-bit base in 90 kHz units times 300 plus a 9-bit extension: it wraps at this many ticks.
PCR_WRAP = (1 << 33) * 300


class SyncError(ValueError):
    """The data is not a whole number of aligned 188-byte packets."""


@dataclass(frozen=True)
class Packet:
    index: int
    offset: int  # of the sync byte in the parsed data
    pid: int
    pusi: bool  # payload_unit_start_indicator: a PES or a section starts in this packet
    cc: int
    has_payload: bool
    has_adaptation: bool
    discontinuity: bool  # the adaptation field's discontinuity_indicator
    random_access: bool
    pcr: int | None  # 27 MHz ticks
    transport_error: bool
    raw: bytes = field(repr=False)

    @property
    def payload(self) -> bytes:
        if not self.has_payload:
            return b""
        start = 4 + (1 + self.raw[4] if self.has_adaptation else 0)
        return self.raw[start:]


def parse(data: bytes, *, allow_partial_tail: bool = False) -> list[Packet]:
    """Every packet in ``data``, which must start on a sync byte.

    A capture taken while the stream is still arriving may end inside a packet; with
    ``allow_partial_tail`` those trailing bytes are left out instead of being an error.
    """
    whole, tail = divmod(len(data), PACKET_SIZE)
    packets = []
    for index in range(whole):
        offset = index * PACKET_SIZE
        raw = bytes(data[offset : offset + PACKET_SIZE])
        if raw[0] != SYNC_BYTE:
            raise SyncError(
                f"lost sync at packet {index} (byte offset {offset}): 0x{raw[0]:02x} where 0x47 was expected"
            )
        packets.append(_packet(index, offset, raw))
    # Checked after the sync bytes: a byte lost in the middle is better told by where it was lost.
    if tail and not allow_partial_tail:
        raise SyncError(f"{len(data)} bytes is not a whole number of {PACKET_SIZE}-byte packets ({tail} left over)")
    return packets


def _packet(index: int, offset: int, raw: bytes) -> Packet:
    control = (raw[3] >> 4) & 0x3
    has_adaptation = bool(control & 0x2)
    discontinuity = random_access = False
    pcr = None
    if has_adaptation and raw[4] > 0:  # a zero-length adaptation field is one stuffing byte, without flags
        flags = raw[5]
        discontinuity = bool(flags & 0x80)
        random_access = bool(flags & 0x40)
        if flags & 0x10 and raw[4] >= 7:
            base = int.from_bytes(raw[6:11], "big") >> 7
            extension = ((raw[10] & 0x1) << 8) | raw[11]
            pcr = base * 300 + extension
    return Packet(
        index=index,
        offset=offset,
        pid=((raw[1] & 0x1F) << 8) | raw[2],
        pusi=bool(raw[1] & 0x40),
        cc=raw[3] & 0xF,
        has_payload=bool(control & 0x1),
        has_adaptation=has_adaptation,
        discontinuity=discontinuity,
        random_access=random_access,
        pcr=pcr,
        transport_error=bool(raw[1] & 0x80),
        raw=raw,
    )


def since(packets: Sequence[Packet], index: int) -> list[Packet]:
    return [packet for packet in packets if packet.index >= index]


# continuity


def continuity_errors(packets: Iterable[Packet]) -> list[int]:
    """Indices of packets whose continuity counter breaks the rules of ISO/IEC 13818-1 2.4.3.3.

    A payload packet must carry the previous counter of its PID plus one (mod 16), or be a
    duplicate: a single repeat of the previous payload packet, same counter and same payload. A
    repeated counter with other content is an error, the mark of a splicer rebasing off by one.
    A packet without payload must keep the counter unchanged. A set discontinuity_indicator
    excuses the packet. The null PID is not counted. After an error the count restarts from the
    offending packet, so one splice gives at most one error per PID.
    """
    last_cc: dict[int, int] = {}
    last_payload: dict[int, bytes] = {}
    repeated: set[int] = set()
    errors = []
    for packet in packets:
        if packet.pid == NULL_PID:
            continue
        previous = last_cc.get(packet.pid)
        duplicate = (
            packet.has_payload
            and packet.cc == previous
            and packet.pid not in repeated
            and packet.payload == last_payload.get(packet.pid)
        )
        if previous is None or packet.discontinuity or duplicate:
            ok = True
        elif packet.has_payload:
            ok = packet.cc == (previous + 1) % 16
        else:
            ok = packet.cc == previous
        if not ok:
            errors.append(packet.index)
        if packet.has_payload:
            repeated.discard(packet.pid)
            if duplicate:
                repeated.add(packet.pid)
            last_payload[packet.pid] = packet.payload
        last_cc[packet.pid] = packet.cc
    return errors


# tables


@dataclass(frozen=True)
class Section:
    index: int  # of the packet the section starts in
    pid: int
    table_id: int
    table_id_extension: int  # transport_stream_id in a PAT, program_number in a PMT
    version: int
    body: bytes = field(repr=False)  # between the 8-byte long-form header and the CRC
    crc_ok: bool


class Owner(NamedTuple):
    """Which encoder a PAT came from."""

    transport_stream_id: int
    program_number: int


class Pmt(NamedTuple):
    program_number: int
    pcr_pid: int
    streams: dict[int, int]  # elementary PID -> stream_type


def sections(packets: Iterable[Packet], pid: int) -> Iterator[Section]:
    """The long-form PSI sections carried on ``pid``, put back together across packets.

    A section broken by a continuity error is dropped rather than glued to the wrong bytes.
    """
    pending: bytearray | None = None
    start = 0
    last_cc: int | None = None
    last_payload = b""
    for packet in packets:
        if packet.pid != pid or not packet.has_payload:
            continue
        payload = packet.payload
        continuous = last_cc is None or packet.cc == (last_cc + 1) % 16
        duplicate = last_cc == packet.cc and payload == last_payload
        last_cc, last_payload = packet.cc, payload
        if duplicate:
            continue
        if packet.pusi:
            pointer = payload[0]
            if pending is not None and continuous:
                pending += payload[1 : 1 + pointer]
                section, _rest = _take_section(pending)
                if section is not None:
                    yield _section(section, start, pid)
            pending, start = bytearray(payload[1 + pointer :]), packet.index
        elif pending is not None and continuous:
            pending += payload
        else:
            pending = None
        while pending is not None:
            section, pending = _take_section(pending)
            if section is None:
                break
            yield _section(section, start, pid)


def _take_section(buffer: bytearray) -> tuple[bytes | None, bytearray | None]:
    """Split one whole section off the front: (section, rest), (None, buffer) when more bytes are
    needed, (None, None) when only stuffing is left."""
    if not buffer or buffer[0] == 0xFF:
        return None, None
    if len(buffer) < 3:
        return None, buffer
    length = 3 + (((buffer[1] & 0x0F) << 8) | buffer[2])
    if len(buffer) < length:
        return None, buffer
    return bytes(buffer[:length]), buffer[length:]


def _section(data: bytes, index: int, pid: int) -> Section:
    if len(data) < 12:
        raise ValueError(f"section of {len(data)} bytes at packet {index} is too short for a long-form section")
    return Section(
        index=index,
        pid=pid,
        table_id=data[0],
        table_id_extension=int.from_bytes(data[3:5], "big"),
        version=(data[5] >> 1) & 0x1F,
        body=data[8:-4],
        crc_ok=crc32_mpeg2(data) == 0,
    )


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (not zlib's CRC: no reflection, no final xor); 0 over a section with its CRC."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def pat_programs(section: Section) -> dict[int, int]:
    """program_number -> PMT PID (program 0, the network PID, left out)."""
    if section.table_id != PAT_TABLE:
        raise ValueError(f"table 0x{section.table_id:02x} at packet {section.index} is not a PAT")
    body = section.body
    programs = {}
    for at in range(0, len(body) - 3, 4):
        number = int.from_bytes(body[at : at + 2], "big")
        if number:
            programs[number] = int.from_bytes(body[at + 2 : at + 4], "big") & 0x1FFF
    return programs


def parse_pmt(section: Section) -> Pmt:
    if section.table_id != PMT_TABLE:
        raise ValueError(f"table 0x{section.table_id:02x} at packet {section.index} is not a PMT")
    body = section.body
    pcr_pid = int.from_bytes(body[0:2], "big") & 0x1FFF
    at = 4 + (int.from_bytes(body[2:4], "big") & 0x0FFF)
    streams = {}
    while at + 5 <= len(body):
        streams[int.from_bytes(body[at + 1 : at + 3], "big") & 0x1FFF] = body[at]
        at += 5 + (int.from_bytes(body[at + 3 : at + 5], "big") & 0x0FFF)
    return Pmt(section.table_id_extension, pcr_pid, streams)


def pats(packets: Iterable[Packet]) -> list[Section]:
    return [section for section in sections(packets, PAT_PID) if section.table_id == PAT_TABLE]


def pat_owner(packet_or_section: Packet | Section) -> Owner:
    """The (transport_stream_id, program_number) of a PAT, from its section or the packet it starts in."""
    section = packet_or_section
    if isinstance(section, Packet):
        found = pats([section]) if section.pid == PAT_PID and section.pusi else []
        if not found:
            raise ValueError(f"packet {section.index} does not hold a whole PAT")
        section = found[0]
    return Owner(section.table_id_extension, min(pat_programs(section), default=0))


def pmt_pids(packets: Iterable[Packet]) -> dict[int, int]:
    """program_number -> PMT PID, from every PAT in the packets (a later PAT wins)."""
    found: dict[int, int] = {}
    for section in pats(packets):
        found.update(pat_programs(section))
    return found


def pmts(packets: Sequence[Packet]) -> list[Section]:
    """Every PMT section on the PIDs the PATs name, in packet order."""
    wanted = set(pmt_pids(packets).values())
    found = [section for pid in wanted for section in sections(packets, pid) if section.table_id == PMT_TABLE]
    return sorted(found, key=lambda section: section.index)


def first_psi_after(packets: Sequence[Packet], index: int) -> tuple[int, int]:
    """Indices of the first PAT at or after packet ``index`` and of the first PMT at or after that PAT.

    The PMT is looked for on the PIDs that PAT names, so both come from the same encoder.
    """
    later = since(packets, index)
    for pat in pats(later):
        after_pat = since(later, pat.index)
        starts = [
            next((section.index for section in sections(after_pat, pid) if section.table_id == PMT_TABLE), None)
            for pid in set(pat_programs(pat).values())
        ]
        found = [start for start in starts if start is not None]
        if not found:
            raise LookupError(f"no PMT after the PAT at packet {pat.index} (programs {pat_programs(pat)})")
        return pat.index, min(found)
    raise LookupError(f"no PAT at or after packet {index}")


# PCR


@dataclass(frozen=True)
class PcrJump:
    index: int
    pid: int
    previous: int
    current: int
    discontinuity: bool  # the packet announces the jump

    @property
    def step_ms(self) -> float:
        """Signed: negative when the PCR went backwards (a wrap of the 33-bit base is not a jump)."""
        step = (self.current - self.previous) % PCR_WRAP
        if step > PCR_WRAP // 2:
            step -= PCR_WRAP
        return step * 1000 / PCR_HZ


def pcr_jumps(packets: Iterable[Packet], max_step_ms: float = 100.0) -> list[PcrJump]:
    """Where a PID's PCR goes backwards or forwards by more than ``max_step_ms``.

    ISO/IEC 13818-1 wants a PCR at least every 100 ms, so a larger step within one encoder's stream
    is already a fault; between two encoders the clocks are unrelated and almost any step is a jump.
    Two encoders started within a few tens of ms of each other may splice without one, though.
    """
    last: dict[int, int] = {}
    jumps = []
    for packet in packets:
        if packet.pcr is None:
            continue
        previous = last.get(packet.pid)
        last[packet.pid] = packet.pcr
        if previous is None:
            continue
        jump = PcrJump(packet.index, packet.pid, previous, packet.pcr, packet.discontinuity)
        if jump.step_ms < 0 or jump.step_ms > max_step_ms:
            jumps.append(jump)
    return jumps


def first_pcr_after(packets: Sequence[Packet], index: int) -> Packet:
    """The first PCR-carrying packet at or after ``index``: where a switch must set discontinuity."""
    for packet in since(packets, index):
        if packet.pcr is not None:
            return packet
    raise LookupError(f"no PCR at or after packet {index}")


# which encoder


class Segment(NamedTuple):
    """A run of packets under one encoder's PATs: from its first PAT to just before the next owner's."""

    transport_stream_id: int
    first: int
    last: int


@dataclass(frozen=True)
class Switch:
    """One change of encoder. The new encoder's first packet lies in (last_pat, first_pat]."""

    from_owner: Owner
    to_owner: Owner
    last_pat: int  # index of the old encoder's last PAT
    first_pat: int  # index of the new encoder's first PAT
    splice: int  # best estimate of the new encoder's first packet (see switches())


def segments(packets: Sequence[Packet]) -> list[Segment]:
    """Runs of (transport_stream_id, first index, last index), split where the PAT's owner changes.

    Packets before the first PAT belong to no segment. The new encoder's packets may start before
    its first PAT; ``switches`` narrows the splice down.
    """
    found: list[Segment] = []
    for pat in pats(packets):
        tsid = pat.table_id_extension
        if found and found[-1].transport_stream_id == tsid:
            continue
        if found:
            found[-1] = found[-1]._replace(last=pat.index - 1)
        found.append(Segment(tsid, pat.index, packets[-1].index))
    return found


def switches(packets: Sequence[Packet], max_pcr_step_ms: float = 100.0) -> list[Switch]:
    """Every change of PAT owner, with the splice narrowed down.

    Between the old owner's last PAT and the new owner's first one, the first packet that shows a
    seam is taken as the splice: a continuity error, a set discontinuity_indicator or a PCR jump.
    Where a relay hid the seam, the new owner's first PAT is the estimate (a relay that injects
    PAT and PMT at the switch puts it right there).
    """
    owned = [(pat.index, pat_owner(pat)) for pat in pats(packets)]
    seams = set(continuity_errors(packets))
    seams.update(packet.index for packet in packets if packet.discontinuity)
    seams.update(jump.index for jump in pcr_jumps(packets, max_pcr_step_ms))
    found = []
    for (before, old), (after, new) in itertools.pairwise(owned):
        if new.transport_stream_id == old.transport_stream_id:
            continue
        inside = [index for index in seams if before < index <= after]
        found.append(Switch(old, new, before, after, min(inside, default=after)))
    return found


def find_switch(packets: Sequence[Packet], from_tsid: int, to_tsid: int) -> Switch:
    """The first switch from one encoder to the other; fails saying what was seen instead."""
    found = switches(packets)
    for switch in found:
        if (switch.from_owner.transport_stream_id, switch.to_owner.transport_stream_id) == (from_tsid, to_tsid):
            return switch
    seen = [(s.from_owner.transport_stream_id, s.to_owner.transport_stream_id, s.splice) for s in found]
    raise LookupError(f"no switch from tsid {from_tsid} to {to_tsid}; segments {segments(packets)}, switches {seen}")
