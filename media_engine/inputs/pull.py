"""Inputs that pull a stream from a web server: MPEG-TS over HTTP(S) and HLS.

Both open the source with PyAV (FFmpeg's HTTP, TLS and HLS clients), reconnect with backoff when it
ends or fails, and say why while they try again: "Server returned 404 Not Found", "Connection
refused", "no answer within 10 s".

- **HTTP-TS** (``http``) passes the server's bytes through untouched, only cut into 1316-byte
  messages at packet boundaries. The bytes already are the MPEG-TS the relay carries: remuxing
  would cost a demuxer and a muxer per input and change what reaches the outputs (PIDs, PCRs,
  SCTE-35 and teletext PIDs a remux drops, the encoder's own PAT/PMT), for nothing. A live TS over
  HTTP also arrives at the encoder's pace, so it needs no pacing either.
- **HLS** (``hls``) is remuxed, without decoding, into one continuous MPEG-TS, and paced by its
  PCRs: segments arrive in bursts (the first three at once), which would otherwise reach the
  outputs as bursts and, between them, look like a dead input.

Options (all optional): ``timeout_ms`` (10000): how long connecting or a read may wait before the
source counts as failed and is reopened (it also bounds how long ``stop()`` may take);
``user_agent``; ``headers``: extra request headers, one "Name: value" per line. HLS only: ``live_start_index``
(-3): the segment of a live playlist to start from, counted from its end; ``max_bitrate_kbps``:
of a master playlist's variants, take the highest within this (default: the highest).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from typing import Any
from urllib.parse import urlsplit

import av

from media_engine.backoff import Backoff
from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input, Sink
from media_engine.options import int_option
from media_engine.remux import MESSAGE, Pacer, Timeline, describe_error, open_ts_muxer, play_then_flush
from media_engine.ts import PACKET, SYNC

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 10_000
USER_AGENT = "Vajra Cast"
# How much the HTTP client hands over at once: whatever has arrived, up to this.
_READ_SIZE = 64 * 1024
_SYNC_RUN = 3  # packets in a row that must start with a sync byte before a boundary counts as found


class PullInput(Input):
    """Opens ``config.url`` in a thread of its own and reads it until it ends or fails, then opens
    it again after a backoff delay."""

    FORMAT = ""  # the FFmpeg demuxer
    WHAT = ""  # how messages name the kind

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.url = config.url.strip()
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"input {config.name!r}: an {self.WHAT} input needs an http:// or https:// URL")
        port = f":{parts.port}" if parts.port else ""
        # Where it pulls from, for the status: no path or query, which may hold a token.
        self.peer = f"{parts.scheme}://{parts.hostname}{port}"
        self.timeout_s = int_option(config, "timeout_ms", DEFAULT_TIMEOUT_MS, minimum=1000, maximum=120_000) / 1000
        self._thread: threading.Thread | None = None
        self._delivered = False  # since the current connection opened
        self._released = False  # stop() has returned: nothing more may be delivered

    def _ffmpeg_options(self) -> dict[str, str]:
        options = {
            "rw_timeout": str(int(self.timeout_s * 1_000_000)),
            "user_agent": self.config.options.get("user_agent") or USER_AGENT,
        }
        headers = self.config.options.get("headers", "")
        if headers.strip():
            lines = [line.strip() for line in headers.splitlines() if line.strip()]
            options["headers"] = "".join(f"{line}\r\n" for line in lines)
        return options

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self.stats.state = "connecting"
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.config.name)
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff(first=0.5, longest=10.0)
        while not self._stop.is_set():
            reason = self._connection()
            if self._stop.is_set():
                break
            if self.stats.state == "connected":
                log.warning("%s: %s lost (%s); reconnecting", self.config.name, self.peer, reason)
                self.stats.disconnected("connecting", reason)
            else:
                if reason != self.stats.reason:
                    log.info("%s: cannot open %s: %s", self.config.name, self.peer, reason)
                self.stats.reason = reason
            if self._delivered:
                backoff.reset()
            if not backoff.wait(self._stop):
                break

    def _connection(self) -> str:
        """Open the source and read it; returns why it ended."""
        self._delivered = False
        try:
            container = av.open(
                self.url,
                format=self.FORMAT,
                options=self._ffmpeg_options(),
                timeout=(self.timeout_s, self.timeout_s),
            )
        except av.FFmpegError as exc:
            return describe_error(exc, self.timeout_s)
        try:
            if self._stop.is_set():
                return "stopped"
            self.stats.connected(self.peer)
            log.info("%s: pulling %s from %s", self.config.name, self.WHAT, self.peer)
            return self._read(container)
        except av.FFmpegError as exc:
            return describe_error(exc, self.timeout_s)
        except Exception as exc:
            log.exception("%s: reading %s failed", self.config.name, self.peer)
            return describe_error(exc)
        finally:
            container.close()

    @abstractmethod
    def _read(self, container: Any) -> str:
        """Deliver what the open source gives until it ends; returns why it ended."""

    def _send(self, message: bytes) -> None:
        if self._released:
            return  # a read that outlived stop() must not reach a relay that has let go
        self._delivered = True
        self.deliver(message, len(message))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A read blocked in FFmpeg returns within the timeout at the latest.
            self._thread.join(timeout=self.timeout_s + 2)
        self._released = True
        self.stats.disconnected("stopped", "")


class TsAligner:
    """Cuts a byte stream into messages of whole TS packets. It finds where packets start (three
    sync bytes 188 bytes apart) and, whenever a packet does not start with one, finds it again;
    ``lost_sync`` counts those times."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._synced = False
        self.lost_sync = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        start = 0
        while True:
            if not self._synced:
                found = _find_sync(buffer, start)
                if found is None:
                    # A boundary may begin in the last bytes: keep them for the next read.
                    start = max(start, len(buffer) - (_SYNC_RUN - 1) * PACKET)
                    break
                start, self._synced = found, True
            count = (len(buffer) - start) // PACKET
            sync_bytes = buffer[start : start + count * PACKET : PACKET]
            good = count - len(sync_bytes.lstrip(bytes((SYNC,))))
            # While in sync only whole messages go; the packets before a lost sync go at once.
            whole = good - good % 7 if good == count else good
            end = start + whole * PACKET
            messages.extend(bytes(buffer[offset : min(offset + MESSAGE, end)]) for offset in range(start, end, MESSAGE))
            start = end
            if good == count:
                break
            self._synced = False
            self.lost_sync += 1
        del buffer[:start]
        return messages

    def flush(self) -> list[bytes]:
        """At the end of the stream: the whole packets still waiting for a full message."""
        whole = len(self._buffer) - len(self._buffer) % PACKET if self._synced else 0
        tail = [bytes(self._buffer[:whole])] if whole else []
        self._buffer.clear()
        return tail


def _find_sync(buffer: bytearray, start: int) -> int | None:
    span = (_SYNC_RUN - 1) * PACKET
    offset = buffer.find(SYNC, start)
    while offset != -1 and offset + span < len(buffer):
        if all(buffer[offset + run * PACKET] == SYNC for run in range(1, _SYNC_RUN)):
            return offset
        offset = buffer.find(SYNC, offset + 1)
    return None


class HttpTsInput(PullInput):
    """MPEG-TS over HTTP(S) (``config.url``), passed through at packet level."""

    FORMAT = "data"  # FFmpeg's demuxer that hands over the bytes as they are
    WHAT = "HTTP-TS"

    def _ffmpeg_options(self) -> dict[str, str]:
        return {**super()._ffmpeg_options(), "raw_packet_size": str(_READ_SIZE)}

    def _read(self, container: Any) -> str:
        aligner = TsAligner()
        counters = self.stats.ts.counters  # type: ignore[union-attr]
        for packet in container.demux():
            if self._stop.is_set():
                return "stopped"
            if not packet.size:
                continue
            lost = aligner.lost_sync
            for message in aligner.feed(memoryview(packet)):
                self._send(message)
            if aligner.lost_sync != lost:
                # Bytes that were not TS packets never reach the relay; they are counted as the
                # sync errors they would have been.
                counters.sync_errors += aligner.lost_sync - lost
                self.stats.ts.last_sync_error = time.monotonic()  # type: ignore[union-attr]
        for message in aligner.flush():  # the stream's last packets, so it ends on a whole frame
            self._send(message)
        return "the server ended the stream"


def choose_variant(streams: Any, max_bitrate_bps: int = 0) -> list[Any]:
    """The video and audio to take from a playlist. A master playlist offers variants (the same
    programme at several bitrates), FFmpeg a stream for each video and audio of each: the highest
    variant is taken, or the highest within ``max_bitrate_bps`` when set (the lowest if none is)."""
    media = [stream for stream in streams if stream.type in ("video", "audio")]
    if not media:
        return []

    def bitrate(stream: Any) -> int:
        try:
            return int(stream.metadata.get("variant_bitrate", 0))
        except ValueError:
            return 0

    rates = sorted({bitrate(stream) for stream in media})
    fitting = [rate for rate in rates if rate <= max_bitrate_bps] if max_bitrate_bps else rates
    chosen_rate = fitting[-1] if fitting else rates[0]
    chosen = []
    for kind in ("video", "audio"):
        of_kind = [stream for stream in media if stream.type == kind]
        if of_kind:
            chosen.append(next((stream for stream in of_kind if bitrate(stream) == chosen_rate), of_kind[0]))
    return chosen


class HlsInput(PullInput):
    """HLS (``config.url`` names the playlist, live or not), remuxed to MPEG-TS and paced."""

    FORMAT = "hls"
    WHAT = "HLS"

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.live_start_index = int_option(config, "live_start_index", -3, minimum=-1000, maximum=1000)
        self.max_bitrate_bps = int_option(config, "max_bitrate_kbps", 0, minimum=0, maximum=1_000_000) * 1000

    def _ffmpeg_options(self) -> dict[str, str]:
        return {**super()._ffmpeg_options(), "live_start_index": str(self.live_start_index)}

    def _read(self, container: Any) -> str:
        streams = choose_variant(container.streams, self.max_bitrate_bps)
        if not streams:
            return "the playlist has no audio or video"
        for stream in container.streams:
            if stream not in streams:
                # FFmpeg then stops fetching the other variants' playlists and segments.
                stream.discard = av.stream.Discard.all
        pacer = Pacer()
        out = open_ts_muxer(pacer, self.config.name)
        try:
            mapped = {stream.index: out.add_stream_from_template(stream) for stream in streams}
            # Segments carry their encoder's clock; a playlist discontinuity or a skipped segment
            # makes it jump, which the muxer would refuse and the pacing would wait out.
            timeline = Timeline(max_gap_s=1.0)
            packets = container.demux(streams)

            def mux_next() -> bool:
                packet = next(packets, None)
                if packet is None:
                    return False
                if packet.size and timeline.place(packet):
                    packet.stream = mapped[packet.stream_index]
                    out.mux_one(packet)
                return True

            stopped = play_then_flush(mux_next, pacer, self._send, self._stop, self.config.name, out.close)
            return "stopped" if stopped else "the playlist ended"
        finally:
            out.close()
