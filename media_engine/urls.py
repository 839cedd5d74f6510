"""``srt://`` URLs, as srt-live-transmit takes them, and ``udp://`` URLs turned into endpoint settings.

SRT times are in milliseconds (srt-live-transmit's convention; ffmpeg's SRT URLs use microseconds).
A ``udp://`` URL names the address to receive on (none: every local address; a multicast group is
joined) or to send to, as ffmpeg writes them (``udp://@239.1.1.1:5000`` works too), with the UDP
options as query parameters: ``interface`` and ``source`` (inputs), ``ttl`` and ``interface``
(outputs).
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
_UDP_OPTIONS = ("interface", "source", "ttl")


def endpoint_from_url(url: str, *, name: str, default_mode: str) -> EndpointConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("srt", "udp"):
        raise ValueError(f"{url!r}: only srt:// and udp:// URLs are supported here")
    if parts.port is None:
        raise ValueError(f"{url!r}: a port is required")
    query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    if parts.scheme == "udp":
        return _udp_endpoint(url, parts.hostname or "", parts.port, query, name)
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


def _udp_endpoint(url: str, host: str, port: int, query: dict[str, str], name: str) -> EndpointConfig:
    # Which options fit an input or an output is checked when the endpoint is built.
    unknown = sorted(set(query) - set(_UDP_OPTIONS))
    if unknown:
        raise ValueError(f"{url!r}: unknown option {unknown[0]!r} (udp:// takes {', '.join(_UDP_OPTIONS)})")
    return EndpointConfig(id=name, name=name, protocol="udp", host=host, port=port, options=query)
