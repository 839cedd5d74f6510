"""Turning a route's rows into the engine's plain configuration objects."""

from __future__ import annotations

import re

from django.utils.text import slugify

from media_engine.config import (
    EndpointConfig,
    FailoverSettings,
    HealthSettings,
    RelayConfig,
    SrtSettings,
    TranscodeSettings,
)
from routes.choices import SlateMode
from routes.models import Input, Output, Route, TranscodeProfile
from routes.models.endpoints import RTMP_APP, VARIANT_NAME

SLATE_ID = "slate"


def endpoint_config(endpoint: Input | Output, health: HealthSettings | None = None) -> EndpointConfig:
    srt = None
    if endpoint.is_srt:
        srt = SrtSettings(
            mode=endpoint.mode,  # type: ignore[arg-type]
            host=endpoint.host,
            port=endpoint.port or 0,
            streamid=endpoint.streamid,
            passphrase=endpoint.passphrase,
            pbkeylen=endpoint.pbkeylen,
            latency_ms=endpoint.latency_ms,
        )
    return EndpointConfig(
        id=str(endpoint.pk),
        name=endpoint.name,
        protocol=endpoint.protocol,
        srt=srt,
        host=endpoint.host,
        port=endpoint.port or 0,
        url=_url(endpoint),
        options=_options(endpoint),
        health=health or HealthSettings(),
        transcode=transcode_settings(endpoint) if isinstance(endpoint, Output) else (),
    )


def transcode_settings(output: Output) -> tuple[TranscodeSettings, ...]:
    """The renditions the output encodes, main profile first; empty passes the stream through."""
    profiles = output.renditions()
    names = _rendition_names(profiles)
    return tuple(_rendition(profile, name) for profile, name in zip(profiles, names, strict=True))


def _rendition(profile: TranscodeProfile, name: str) -> TranscodeSettings:
    return TranscodeSettings(
        name=name,
        video_codec=profile.video_codec,  # type: ignore[arg-type]
        encoder=profile.encoder,  # type: ignore[arg-type]
        width=profile.width,
        height=profile.height,
        fps=profile.fps,
        video_bitrate_bps=_bps(profile.video_bitrate_kbps),
        gop=profile.gop,
        preset=profile.preset,
        audio_codec=profile.audio_codec,  # type: ignore[arg-type]
        audio_bitrate_bps=_bps(profile.audio_bitrate_kbps),
    )


def _bps(kbps: int | None) -> int | None:
    return None if kbps is None else kbps * 1000


def _rendition_names(profiles: list[TranscodeProfile]) -> list[str]:
    """Each rendition's name, which an HLS ladder also uses as the folder of its playlist and
    segments: the profile's name as a URL-safe slug, made unique within the output."""
    names: list[str] = []
    for profile in profiles:
        slug = re.sub(r"[^a-z0-9-]+", "-", slugify(profile.name)).strip("-")[:48]
        name = slug if VARIANT_NAME.fullmatch(slug) else f"profile-{profile.pk}"
        while name in names:
            name = f"{name}-{profile.pk}"
        names.append(name)
    return names


def _url(endpoint: Input | Output) -> str:
    directory = endpoint.media_directory() if isinstance(endpoint, Output) else None
    return str(directory) if directory is not None else endpoint.url


def _options(endpoint: Input | Output) -> dict[str, str]:
    """Each kind's own settings, by the names its engine module reads."""
    protocol = endpoint.protocol
    options: dict[str, object] = {"interface": endpoint.interface} if protocol == "udp" else {}
    if isinstance(endpoint, Input):
        if protocol == "udp":
            options["source"] = endpoint.source_address
        elif protocol == "rtmp":
            options.update(app=RTMP_APP, stream_key=endpoint.stream_key)
    elif protocol == "udp":
        options["ttl"] = endpoint.ttl
    elif protocol == "rtmp":
        options["stream_key"] = endpoint.stream_key
    elif protocol == "hls":
        options.update(segment_s=endpoint.segment_s, playlist_size=endpoint.playlist_size)
    elif protocol == "file":
        options.update(rotate_s=endpoint.rotate_s, keep_files=endpoint.keep_files, keep_hours=endpoint.keep_hours)
    return {key: str(value) for key, value in options.items() if value not in (None, "")}


def input_health(route: Route, source: Input) -> HealthSettings:
    floor = source.min_bitrate_kbps
    return HealthSettings(
        timeout_ms=source.timeout_ms or route.input_timeout_ms,
        min_bitrate_bps=floor * 1000 if floor else None,
    )


def relay_config(route: Route) -> RelayConfig:
    inputs = tuple(endpoint_config(source, input_health(route, source)) for source in route.inputs.all())
    if not inputs:
        raise ValueError(f'route "{route.name}" has no input to relay')
    outputs = tuple(endpoint_config(o) for o in route.outputs.all() if o.enabled)
    slate = None
    if route.slate == SlateMode.PATTERN:
        slate = EndpointConfig(id=SLATE_ID, name="slate", protocol="slate", options={"text": route.name})
    failover = FailoverSettings(mode=route.failover_mode, failback=route.failback, holdoff_s=route.holdoff_s)  # type: ignore[arg-type]
    return RelayConfig(name=route.name, inputs=inputs, outputs=outputs, failover=failover, slate=slate)
