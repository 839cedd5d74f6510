"""What a viewer would notice in a captured MPEG-TS: its streams as ffprobe reports them, the video
bitrate, and how well sound and picture line up.

The sync check reads captures of ``media.ffmpeg_flash_encoder``, whose picture flashes white while
its sound beeps: each flash's first white picture and its beep's first loud sample should come at
the same time. Pictures and sound are decoded with PyAV; times are the capture's own timestamps.
"""

from __future__ import annotations

import array
import itertools
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.peers.media import BACKGROUND_PATCH, FLASH_BOX

WHITE = 128  # mean luma above which the flash box is lit
LOUD = 0.02  # sample magnitude (full scale 1.0) of a beep; the silence between decodes to ~0
QUIET_BEFORE_S = 0.3  # a beep's onset follows at least this much silence


def streams(path: Path) -> list[dict]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_type,codec_name,width,height,r_frame_rate,avg_frame_rate,sample_rate,channels",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"ffprobe cannot read {path}: {result.stderr}"
    return json.loads(result.stdout)["streams"]


def stream(path: Path, kind: str) -> dict:
    found = [entry for entry in streams(path) if entry["codec_type"] == kind]
    assert len(found) == 1, f"{path} has {len(found)} {kind} streams"
    return found[0]


def video_packets(path: Path) -> list[tuple[float, int, bool]]:
    """(presentation time, size, keyframe) of every video packet, in file order."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,size,flags",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"ffprobe cannot read {path}: {result.stderr}"
    return [
        (float(packet["pts_time"]), int(packet["size"]), "K" in packet.get("flags", ""))
        for packet in json.loads(result.stdout)["packets"]
        if packet.get("pts_time") not in (None, "N/A")
    ]


def video_bitrate_bps(path: Path, *, skip_s: float = 0.0) -> tuple[float, float]:
    """(bits per second of the video packets, seconds measured), leaving out the first ``skip_s``."""
    packets = video_packets(path)
    start = min(pts for pts, _, _ in packets) + skip_s
    kept = [(pts, size) for pts, size, _ in packets if pts >= start]
    times = sorted(pts for pts, _ in kept)
    frame_s = (times[-1] - times[0]) / max(len(times) - 1, 1)
    seconds = times[-1] - times[0] + frame_s
    return sum(size for _, size in kept) * 8 / seconds, seconds


def keyframe_times(path: Path) -> list[float]:
    return [pts for pts, _, key in video_packets(path) if key]


@dataclass(frozen=True)
class Picture:
    time_s: float
    flash_luma: int
    background_luma: int

    @property
    def lit(self) -> bool:
        return self.flash_luma > WHITE


def _mean(plane_data: bytes, stride: int, box: tuple[int, int, int, int]) -> int:
    x, y, width, height = box
    values = [
        plane_data[row * stride + column]
        for row in range(y + 4, y + height - 4, 4)
        for column in range(x + 4, x + width - 4, 4)
    ]
    return sum(values) // len(values)


def pictures(path: Path) -> list[Picture]:
    """Every decoded picture (scaled back to the encoder's 320x240 to find the boxes)."""
    import av

    found = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.pts is None:
                continue
            small = frame.reformat(320, 240, "gray")
            plane = small.planes[0]
            data = bytes(plane)
            found.append(
                Picture(
                    float(frame.pts * frame.time_base),
                    _mean(data, plane.line_size, FLASH_BOX),
                    _mean(data, plane.line_size, BACKGROUND_PATCH),
                )
            )
    found.sort(key=lambda picture: picture.time_s)
    return found


def flash_onsets(found: list[Picture], source: Callable[[Picture], object]) -> list[Picture]:
    """The first lit picture of each flash. ``source`` tells which encoder a picture came from: a
    switch landing inside a flash shows the new encoder's flash half-way through, not its onset."""
    return [
        picture
        for earlier, picture in itertools.pairwise(found)
        if picture.lit and not earlier.lit and source(earlier) == source(picture)
    ]


def beep_onsets(path: Path) -> list[float]:
    """The time of the first loud sample of each beep."""
    import av

    onsets: list[float] = []
    last_loud: float | None = None
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono")
        for decoded in container.decode(audio=0):
            if decoded.pts is None:
                continue
            start = float(decoded.pts * decoded.time_base)
            for frame in resampler.resample(decoded):
                samples = array.array("f", bytes(frame.planes[0])[: frame.samples * 4])
                rate = frame.sample_rate
                for index, value in enumerate(samples):
                    if abs(value) < LOUD:
                        continue
                    at = start + index / rate
                    if last_loud is None or at - last_loud > QUIET_BEFORE_S:
                        onsets.append(at)
                    last_loud = at
    return onsets


def timestamps(path: Path, kind: str) -> list[float]:
    """Decoding times of every packet of the first ``kind`` stream (video or audio), in file order."""
    selector = "v:0" if kind == "video" else "a:0"
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", selector, "-show_entries", "packet=pts_time,dts_time",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [
        float(packet["dts_time"])
        for packet in json.loads(result.stdout)["packets"]
        if packet.get("dts_time") not in (None, "N/A")
    ]
