"""Plain configuration objects for the engine. Built from Django models by the orchestration layer,
or from URLs by the command line; the engine itself never sees a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SrtMode = Literal["listener", "caller", "rendezvous"]
FailoverMode = Literal["auto", "manual"]
VideoCodec = Literal["h264", "hevc", "copy"]
EncoderKind = Literal["auto", "software", "vaapi", "qsv", "nvenc"]
AudioCodec = Literal["copy", "aac"]


@dataclass(frozen=True)
class SrtSettings:
    """One SRT endpoint. Times in milliseconds, as the operator enters them."""

    mode: SrtMode = "caller"
    host: str = ""
    port: int = 0
    streamid: str = ""
    passphrase: str = ""
    pbkeylen: int = 16
    latency_ms: int = 120
    peer_latency_ms: int | None = None
    connect_timeout_ms: int = 3000
    peer_idle_timeout_ms: int = 5000
    # None: no cap (libsrt's default, and srt-live-transmit's): retransmissions go out at once.
    # 0: capped at the measured input rate plus overhead_percent; above 0: a fixed cap in bytes/s.
    maxbw_bytes: int | None = None
    overhead_percent: int = 25
    send_buffer_bytes: int | None = None
    recv_buffer_bytes: int | None = None
    local_port: int = 0  # rendezvous: the local port (defaults to the remote one)

    def describe(self) -> str:
        where = f"{self.host or '*'}:{self.port}"
        sid = f" streamid={self.streamid!r}" if self.streamid else ""
        return f"srt {self.mode} {where}{sid}"


@dataclass(frozen=True)
class HealthSettings:
    """When an input counts as down. Only inputs use it."""

    timeout_ms: int = 300  # no data for this long
    min_bitrate_bps: int | None = None  # over the last second, once the input has been up that long
    error_burst: int = 20  # TS sync + continuity errors within one second


@dataclass(frozen=True)
class TranscodeSettings:
    """One rendition an output re-encodes the active input into. Unset sizes and rates keep the
    source's; bitrates in bits per second."""

    name: str
    video_codec: VideoCodec = "h264"
    encoder: EncoderKind = "auto"
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    video_bitrate_bps: int | None = None
    gop: int | None = None  # frames; None: two seconds
    preset: str = "veryfast"
    audio_codec: AudioCodec = "copy"
    audio_bitrate_bps: int | None = None


@dataclass(frozen=True)
class EndpointConfig:
    """An input or output: its identity in the route and its protocol settings."""

    id: str
    name: str
    protocol: str
    srt: SrtSettings | None = None
    # Other protocols: where to listen, send or pull, and their own settings by name.
    host: str = ""
    port: int = 0
    url: str = ""
    options: dict[str, str] = field(default_factory=dict)
    health: HealthSettings = field(default_factory=HealthSettings)
    # Outputs only: empty passes the stream through; one rendition re-encodes it; several (HLS
    # only) make an adaptive-bitrate ladder.
    transcode: tuple[TranscodeSettings, ...] = ()


@dataclass(frozen=True)
class FailoverSettings:
    mode: FailoverMode = "auto"
    failback: bool = False
    holdoff_s: float = 10.0
    # A planned switch waits for a video random-access point on the new input, at most this long.
    rap_wait_s: float = 3.0
    # Right after start, inputs connect in any order: until then the best healthy input is taken
    # even with failback off, so a backup that answered first does not stay active for good.
    settle_s: float = 3.0


@dataclass(frozen=True)
class RelayConfig:
    """Inputs in priority order (the first is the main one), the active one fanned out to outputs.
    A slate, when set, is the last resort after every input."""

    name: str
    inputs: tuple[EndpointConfig, ...]
    outputs: tuple[EndpointConfig, ...]
    failover: FailoverSettings = field(default_factory=FailoverSettings)
    slate: EndpointConfig | None = None
