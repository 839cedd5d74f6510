"""An HLS adaptive-bitrate ladder: each rendition is an HLS output of its own, in a subdirectory
of the output's directory, and a master playlist there lists them for players to choose from.

Every rendition is encoded from the same decoded pictures, with the same frame numbering and a
fixed GOP, so their keyframes (and so their segment boundaries) fall on the same instants.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from media_engine.config import EndpointConfig, TranscodeSettings
from media_engine.outputs.hls import PLAYLIST
from media_engine.segmenter import output_directory

MASTER = PLAYLIST  # players open the output's index.m3u8 either way
# Bits a rendition adds above its encoders' rates: TS headers, PES headers, tables, PCRs.
MUX_OVERHEAD = Fraction(11, 10)
DEFAULT_AUDIO_BPS = 128_000  # a copied audio stream's rate is the source's, unknown in advance
# A rendition without a video bitrate is reckoned at this many bits per pixel of each picture.
BITS_PER_PIXEL = Fraction(1, 10)
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")


def directory_names(renditions: Sequence[TranscodeSettings]) -> list[str]:
    """A subdirectory per rendition, from its name: lower case letters, digits and dashes, unique."""
    names: list[str] = []
    for index, settings in enumerate(renditions, start=1):
        base = _NOT_ALLOWED.sub("-", settings.name.lower()).strip("-") or f"rendition-{index}"
        name, number = base, 2
        while name in names:
            name, number = f"{base}-{number}", number + 1
        names.append(name)
    return names


def rendition_configs(config: EndpointConfig) -> list[EndpointConfig]:
    """The HLS output of each rendition: the ladder's settings, in its own subdirectory."""
    directory = output_directory(config)
    return [
        replace(
            config,
            id=f"{config.id}/{name}",
            name=f"{config.name} {settings.name}",
            url=str(directory / name),
            transcode=(),
        )
        for settings, name in zip(config.transcode, directory_names(config.transcode), strict=True)
    ]


@dataclass(frozen=True)
class Variant:
    uri: str  # the variant playlist, relative to the master
    settings: TranscodeSettings
    size: tuple[int, int]
    fps: Fraction

    @property
    def bandwidth(self) -> int:
        """Peak bits per second, as RFC 8216 asks: the encoders' rates plus the muxing's."""
        width, height = self.size
        video = self.settings.video_bitrate_bps or width * height * self.fps * BITS_PER_PIXEL
        audio = self.settings.audio_bitrate_bps if self.settings.audio_codec == "aac" else None
        return math.ceil((video + (audio or DEFAULT_AUDIO_BPS)) * MUX_OVERHEAD)


def master_playlist(variants: Sequence[Variant]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    # Highest first: players that take the first variant start with the best picture.
    for variant in sorted(variants, key=lambda variant: variant.bandwidth, reverse=True):
        width, height = variant.size
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={variant.bandwidth},RESOLUTION={width}x{height},"
            f"FRAME-RATE={float(variant.fps):.3f}"
        )
        lines.append(variant.uri)
    return "\n".join(lines) + "\n"


def write_master(directory: Path, variants: Sequence[Variant]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    # Players and the web server read it at any moment: they see the old one or the new one.
    temporary = directory / f".{MASTER}.tmp"
    temporary.write_text(master_playlist(variants), encoding="utf-8")
    path = directory / MASTER
    os.replace(temporary, path)
    return path
