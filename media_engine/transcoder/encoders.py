"""Which video encoders a node can run, and which one a rendition gets.

A node probes once, at worker start, by opening each hardware encoder on a small picture: a codec
compiled into FFmpeg is not enough, the device and its driver must answer too. ``auto`` then takes
the first the node has in ``AUTO_ORDER``; an explicit choice runs only where it was found.
"""

from __future__ import annotations

import functools
import glob
import io
from dataclasses import dataclass
from fractions import Fraction

import av
from av.codec.hwaccel import HWAccel

from media_engine.remux import describe_error

HARDWARE = ("vaapi", "qsv", "nvenc")
# Hardware first: it costs a fraction of a CPU core per stream.
AUTO_ORDER = (*HARDWARE, "software")
LABELS = {"software": "software (x264/x265)", "vaapi": "VAAPI", "qsv": "Intel QSV", "nvenc": "NVIDIA NVENC"}

CODEC_NAMES = {
    ("h264", "software"): "libx264",
    ("hevc", "software"): "libx265",
    ("h264", "vaapi"): "h264_vaapi",
    ("hevc", "vaapi"): "hevc_vaapi",
    ("h264", "qsv"): "h264_qsv",
    ("hevc", "qsv"): "hevc_qsv",
    ("h264", "nvenc"): "h264_nvenc",
    ("hevc", "nvenc"): "hevc_nvenc",
}
# Encoders that take frames in device memory: PyAV uploads software frames through this device.
_DEVICE_TYPES = {"vaapi": "vaapi", "qsv": "qsv"}
RENDER_NODES = "/dev/dri/renderD*"


class EncoderUnavailable(RuntimeError):
    """The rendition asks for an encoder this node cannot run."""


@dataclass(frozen=True)
class Encoder:
    kind: str  # software, vaapi, qsv or nvenc
    codec_name: str  # the FFmpeg encoder, e.g. libx264 or h264_vaapi
    device: str | None = None  # VAAPI: the render node used

    def hwaccel(self) -> HWAccel | None:
        device_type = _DEVICE_TYPES.get(self.kind)
        if device_type is None:
            return None
        return HWAccel(device_type, device=self.device, allow_software_fallback=False)


def render_node() -> str | None:
    nodes = sorted(glob.glob(RENDER_NODES))
    return nodes[0] if nodes else None


def _try_open(encoder: Encoder) -> None:
    """Encode a few frames of a small picture; raises what FFmpeg says when it cannot."""
    out = av.open(io.BytesIO(), "w", format="mpegts")
    try:
        stream = out.add_stream(encoder.codec_name, rate=25, hwaccel=encoder.hwaccel())
        stream.width, stream.height = 256, 144
        stream.pix_fmt = "nv12" if encoder.kind in _DEVICE_TYPES else "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for index in range(3):
            frame = av.VideoFrame(256, 144, "yuv420p" if encoder.kind not in _DEVICE_TYPES else "nv12")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    finally:
        out.close()


def _probe_one(kind: str) -> str:
    """Empty when the node can run ``kind``; otherwise why not, in words an operator can act on."""
    codec_name = CODEC_NAMES[("h264", kind)]
    if codec_name not in av.codecs_available:
        if kind == "vaapi":
            return "this PyAV build has no VAAPI encoder (PyPI's wheels lack it: use the gpu image)"
        return f"this PyAV build has no {codec_name} encoder"
    device = None
    if kind == "vaapi":
        device = render_node()
        if device is None:
            return f"no render device ({RENDER_NODES})"
    try:
        _try_open(Encoder(kind, codec_name, device))
    except Exception as exc:  # noqa: BLE001 - any failure means: not on this node
        return f"{codec_name} does not open: {describe_error(exc)}"
    return ""


def probe() -> dict[str, str]:
    """Every encoder kind, mapped to "" when this node can run it or to the reason it cannot."""
    return {kind: _probe_one(kind) for kind in AUTO_ORDER}


@functools.cache
def node_probe() -> dict[str, str]:
    """This process's probe, made once: the worker stores it on its Node, transcoders choose by it."""
    return probe()


def available(found: dict[str, str]) -> list[str]:
    """The kinds a probe found, best first."""
    return [kind for kind in AUTO_ORDER if found.get(kind) == ""]


def choose(video_codec: str, requested: str, kinds: list[str] | tuple[str, ...]) -> Encoder:
    """The encoder for a rendition on a node that has ``kinds``; raises EncoderUnavailable."""
    if requested == "auto":
        candidates = [kind for kind in AUTO_ORDER if kind in kinds]
        if not candidates:
            raise EncoderUnavailable("no video encoder works on this node, not even software")
        kind = candidates[0]
    elif requested in kinds:
        kind = requested
    else:
        have = ", ".join(LABELS[kind] for kind in kinds) or "none"
        label = LABELS.get(requested, requested)
        raise EncoderUnavailable(f"the {label} encoder is not available on this node (it has: {have})")
    device = render_node() if kind == "vaapi" else None
    return Encoder(kind, CODEC_NAMES[(video_codec, kind)], device)
