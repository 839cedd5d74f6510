"""``srt://`` URLs, as srt-live-transmit takes them, turned into endpoint settings.

Times are in milliseconds (srt-live-transmit's convention; ffmpeg's SRT URLs use microseconds).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from media_engine.config import EndpointConfig, SrtSettings

_INT_OPTIONS = {
    "latency": "latency_ms",
    "peerlatency": "peer_latency_ms",
    "pbkeylen": "pbkeylen",
    "conntimeo": "connect_timeout_ms",
    "peeridletimeo": "peer_idle_timeout_ms",
    "maxbw": "maxbw_bytes",
    "oheadbw": "overhead_percent",
    "sndbuf": "send_buffer_bytes",
    "rcvbuf": "recv_buffer_bytes",
    "port": "local_port",
}
_STR_OPTIONS = {"streamid": "streamid", "passphrase": "passphrase"}


def endpoint_from_url(url: str, *, name: str, default_mode: str) -> EndpointConfig:
    parts = urlsplit(url)
    if parts.scheme != "srt":
        raise ValueError(f"{url!r}: only srt:// URLs are supported here")
    if parts.port is None:
        raise ValueError(f"{url!r}: a port is required")
    query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    mode = query.pop("mode", "" if parts.hostname else "listener") or default_mode
    if mode not in ("listener", "caller", "rendezvous"):
        raise ValueError(f"{url!r}: mode must be listener, caller or rendezvous")
    settings: dict[str, object] = {"mode": mode, "host": parts.hostname or "", "port": parts.port}
    for key, value in query.items():
        if key in _INT_OPTIONS:
            try:
                settings[_INT_OPTIONS[key]] = int(value)
            except ValueError:
                raise ValueError(f"{url!r}: {key} must be a whole number") from None
        elif key in _STR_OPTIONS:
            settings[_STR_OPTIONS[key]] = value
        else:
            raise ValueError(f"{url!r}: unknown option {key!r}")
    return EndpointConfig(id=name, name=name, protocol="srt", srt=SrtSettings(**settings))  # type: ignore[arg-type]
