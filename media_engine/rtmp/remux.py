"""A publisher's FLV tags remuxed, without decoding, to MPEG-TS cut into 1316-byte messages.

The connection's thread writes tags into a pipe; a thread of the remuxer's own reads the pipe as
an FLV file with PyAV's demuxer and muxes each packet again as MPEG-TS into memory. The network
thread therefore never waits on the demuxer, and a slow demuxer only makes the pipe longer (up
to a bound, past which the publication is given up: it could never catch up live).

An input's MPEG-TS outlives its publishers: when an encoder reconnects with the same streams (the
same codec parameters), the same muxer carries on, so continuity counters run on and timestamps
and PCRs continue from where the previous publisher stopped, plus the time it was away. Players
downstream see a pause, not a new stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import av

from media_engine.remux import MESSAGE, Timeline, open_ts_muxer
from media_engine.rtmp import amf, flv

log = logging.getLogger(__name__)

# Seconds of a few Mbit/s stream: more than this waiting means the remuxer has stalled.
MAX_BACKLOG = 32 * 1024 * 1024
# What the demuxer may read before it has to know the streams. H.264 and AAC parameters travel in
# sequence headers ahead of the first frame, so a short look is enough; it delays the start of
# every publication by about this much.
PROBE_SIZE = 512 * 1024
ANALYZE_US = 500_000

Deliver = Callable[[bytes], None]


class BytePipe:
    """A file-like, read-only view of bytes written by another thread; ``read`` blocks until there
    is something, and returns b"" (end of file) once the pipe is closed and drained, or aborted."""

    def __init__(self, limit: int = MAX_BACKLOG) -> None:
        self._chunks: list[bytes] = []
        self._head = b""  # joined chunks being read, from _offset on
        self._offset = 0
        self._size = 0
        self._limit = limit
        self._closed = False
        self._aborted = False
        self._ready = threading.Condition()

    def write(self, data: bytes) -> bool:
        """False when the reader has fallen too far behind (the data is not taken)."""
        with self._ready:
            if self._closed or self._aborted:
                return False
            if self._size + len(data) > self._limit:
                return False
            self._chunks.append(data)
            self._size += len(data)
            self._ready.notify()
        return True

    def read(self, size: int = -1) -> bytes:
        with self._ready:
            while self._offset >= len(self._head) and not self._chunks and not (self._closed or self._aborted):
                self._ready.wait()
            if self._aborted:
                return b""
            if self._offset >= len(self._head):
                if not self._chunks:
                    return b""
                self._head, self._offset = b"".join(self._chunks), 0
                self._chunks.clear()
            start = self._offset
            end = len(self._head) if size < 0 else min(len(self._head), start + size)
            self._offset = end
            self._size -= end - start
            return self._head[start:end]

    def close(self) -> None:
        """No more writes: the reader gets what is left, then end of file."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def abort(self) -> None:
        """End of file at once; what is left is dropped."""
        with self._ready:
            self._aborted = True
            self._chunks.clear()
            self._head, self._offset, self._size = b"", 0, 0
            self._ready.notify_all()


class TsMessages:
    """Takes the muxer's bytes and hands them on in 1316-byte messages (seven TS packets)."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        pending = self._pending
        pending += data
        if len(pending) >= MESSAGE:
            whole = len(pending) - len(pending) % MESSAGE
            for start in range(0, whole, MESSAGE):
                self._deliver(bytes(pending[start : start + MESSAGE]))
            del pending[:whole]
        return len(data)

    def flush(self) -> None:
        """The tail, whole packets only (the muxer writes nothing else)."""
        if self._pending:
            self._deliver(bytes(self._pending))
            self._pending.clear()


def _metadata_streams(body: bytes) -> tuple[bool, bool] | None:
    """(audio, video) as an onMetaData script tag announces them, when it says."""
    try:
        values = amf.decode_all(body)
    except (amf.AmfError, IndexError):
        return None
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return None
    meta = values[1]
    audio = bool(meta.get("hasAudio", "audiocodecid" in meta))
    video = bool(meta.get("hasVideo", "videocodecid" in meta))
    return (audio, video) if audio or video else None


class TsStream:
    """The MPEG-TS one input sends, kept across its publications. One publication at a time owns
    it (``begin``); a publication that lost it (replaced, aborted) can no longer mux into it."""

    def __init__(self, service: str, deliver: Deliver) -> None:
        self._service = service
        self._messages = TsMessages(self._send)
        self._lock = threading.Lock()
        self._muted = False
        self._out: Any = None
        self._signature: tuple = ()
        self._outputs: list[Any] = []  # the muxer's streams, in the order of the signature
        # Timestamps may only go forward: an encoder's clock that goes back (a restart, a bug) is
        # moved on; one that leaps ahead is kept, as live encoders leap when frames were lost.
        self._timeline = Timeline(max_gap_s=None)
        self._owner: FlvToTs | None = None
        self._splice = False  # the next packet muxed is a new publication's first
        self._last_muxed_at: float | None = None
        self._deliver = deliver
        self.muxers_opened = 0
        self.skipped_packets = 0

    def _send(self, message: bytes) -> None:
        if not self._muted:
            self._deliver(message)

    @staticmethod
    def _signature_of(streams: Sequence[Any]) -> tuple:
        def one(stream: Any) -> tuple:
            context = stream.codec_context
            if context is None:
                return (stream.type, id(stream))  # nothing to compare: never reused
            return (stream.type, context.name, bytes(context.extradata or b""))

        return tuple(one(stream) for stream in streams)

    def begin(self, owner: FlvToTs, streams: Sequence[Any]) -> list[Any]:
        """Make ``owner`` the publication muxing, with these input streams; returns the muxer's
        streams in the same order."""
        with self._lock:
            signature = self._signature_of(streams)
            if self._out is None or signature != self._signature:
                self._close_muxer()
                self._out = open_ts_muxer(self._messages, self._service)
                self._outputs = [self._out.add_stream_from_template(stream) for stream in streams]
                self._signature = signature
                self.muxers_opened += 1
            self._owner = owner
            self._splice = self._last_muxed_at is not None
            return list(self._outputs)

    def mux(self, owner: FlvToTs, packet: av.Packet) -> bool:
        """False once ``owner`` no longer owns the stream."""
        with self._lock:
            if owner is not self._owner or owner.aborted:
                return False
            if self._splice and self._last_muxed_at is not None:
                # The new publisher's first packet comes after the last one placed, as much later as
                # no publisher was sending, so the PCR runs on as a clock would. (Both publications
                # were muxed about as late after their packets arrived: the probe is short.)
                arrived = owner.first_media_at or time.monotonic()
                away = Fraction(max(0.0, arrived - self._last_muxed_at))
                self._timeline.splice(Fraction(packet.dts) * Fraction(packet.time_base) - away)
            self._splice = False
            if not self._timeline.place(packet):
                return True
            try:
                self._out.mux_one(packet)
            except av.FFmpegError as exc:
                # A packet the muxer refuses is lost; the stream goes on.
                self.skipped_packets += 1
                if self.skipped_packets in (1, 10, 100) or self.skipped_packets % 1000 == 0:
                    log.warning(
                        "%s: the muxer refused a packet (%d so far): %s", self._service, self.skipped_packets, exc
                    )
            self._last_muxed_at = time.monotonic()
            return True

    def release(self, owner: FlvToTs) -> None:
        """``owner`` stops muxing; the muxer stays open for the next publication."""
        with self._lock:
            if self._owner is owner:
                self._owner = None
                # The last frame's packets go out now, in a short message, rather than with the
                # next publisher (which may never come).
                self._messages.flush()

    def close(self) -> None:
        """The input stops: nothing more is delivered, not even what the muxer still holds."""
        with self._lock:
            self._muted = True
            self._owner = None
            self._close_muxer()

    def _close_muxer(self) -> None:
        if self._out is not None:
            # Writes out what the muxer still holds (the tail of a publication whose streams differ
            # from the next one's), then the next muxer starts on whole packets.
            self._out.close()
            self._out = None
            self._messages.flush()


class FlvToTs:
    """One publication: FLV tags in, muxed into the input's ``TsStream`` from a thread of its own.
    ``on_done(reason)`` is called from that thread once the remuxer has stopped."""

    def __init__(self, name: str, output: TsStream, on_done: Callable[[str], None]) -> None:
        self.name = name
        self._output = output
        self._on_done = on_done
        self._pipe = BytePipe()
        self._started_flv = False
        self._aborted = False
        self._end_reason = ""
        self.first_media_at: float | None = None  # time.monotonic() of the first audio or video tag
        self.last_media_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"{name} remux")

    def start(self) -> None:
        self._thread.start()

    # fed by the connection's thread

    def media(self, tag_type: int, timestamp: int, body: bytes) -> bool:
        """Take one tag; False when the remuxer cannot keep up and the publication must end."""
        if not self._started_flv:
            # The FLV header says which streams to wait for; the metadata, sent before any frame,
            # knows. Without it both are expected (the demuxer gives up on one that never comes).
            announced = _metadata_streams(body) if tag_type == flv.SCRIPT else None
            audio, video = announced or (True, True)
            if not self._pipe.write(flv.header(audio=audio, video=video)):
                return False
            self._started_flv = True
        if tag_type != flv.SCRIPT:
            self.last_media_at = time.monotonic()
            if self.first_media_at is None:
                self.first_media_at = self.last_media_at
        return self._pipe.write(flv.tag(tag_type, timestamp, body))

    def end(self, reason: str) -> None:
        """The publisher is gone: remux what it sent, then stop."""
        self._end_reason = self._end_reason or reason
        self._pipe.close()

    def abort(self, reason: str) -> None:
        """Stop without muxing anything more (a newer publication takes over, the input stops)."""
        self._end_reason = self._end_reason or reason
        self._aborted = True
        self._pipe.abort()

    @property
    def aborted(self) -> bool:
        return self._aborted

    def join(self, timeout: float) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # the remuxer's thread

    def _run(self) -> None:
        failure = ""
        try:
            self._remux()
        except Exception as exc:
            if not self._aborted:
                log.exception("%s: remuxing to MPEG-TS failed", self.name)
                failure = f"remuxing failed: {exc}"
        finally:
            self._output.release(self)
            # Nothing reads the pipe any more: the connection's next write fails and ends it.
            self._pipe.abort()
        self._on_done(failure or self._end_reason)

    def _remux(self) -> None:
        try:
            source = av.open(
                self._pipe,
                "r",
                format="flv",
                container_options={"probesize": str(PROBE_SIZE), "analyzeduration": str(ANALYZE_US)},
            )
        except av.FFmpegError as exc:
            if self._aborted or not self._started_flv:
                return  # ended before the first frame: nothing to remux
            raise RuntimeError(f"the publisher's stream cannot be read: {exc}") from exc
        with source:
            streams = [s for s in source.streams if s.type in ("video", "audio")]
            if not streams:
                if not self._aborted:
                    log.warning("%s: the publisher sent no audio or video", self.name)
                return
            if self._aborted:
                return
            outputs = self._output.begin(self, streams)
            mapped = {stream.index: output for stream, output in zip(streams, outputs, strict=True)}
            described = ", ".join(f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in streams)
            log.info("%s: remuxing %s to MPEG-TS", self.name, described)
            for packet in source.demux(streams):
                if packet.dts is None:  # the demuxer's end-of-stream markers
                    continue
                packet.stream = mapped[packet.stream_index]
                if not self._output.mux(self, packet):
                    return
