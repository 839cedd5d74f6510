"""The slate: bars and tone as a live MPEG-TS, recorded as an output would send it and checked with
ffprobe and ffmpeg, as a viewer's player would see it."""

from __future__ import annotations

import json
import math
import subprocess
import time
from array import array
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig
from media_engine.inputs import build_input
from media_engine.inputs.slate import SlateInput
from media_engine.slate import clip
from tests.peers.media import decode_problems, wait_until

RUN_S = 4.0  # four loops of the one-second clip
WIDTH, HEIGHT, FPS, TONE_HZ = 640, 360, 25, 440


def slate_config(**options: str) -> EndpointConfig:
    return EndpointConfig(id="slate", name="slate", protocol="slate", options=options)


class Recorder:
    """A sink that keeps every message, in order, with when it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("wb")
        self.messages: list[bytes] = []
        self.arrivals: list[float] = []

    def __call__(self, data: object, length: int) -> None:
        message = bytes(data[:length])  # type: ignore[index]
        self.file.write(message)
        self.messages.append(message)
        self.arrivals.append(time.monotonic())


@dataclass
class Recording:
    path: Path
    recorder: Recorder
    source: SlateInput
    state_while_running: str
    ran_s: float
    stop_s: float


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    path = tmp_path_factory.mktemp("slate") / "slate.ts"
    options = {"width": str(WIDTH), "height": str(HEIGHT), "fps": str(FPS), "tone_hz": str(TONE_HZ), "text": "Off air"}
    source = build_input(slate_config(**options))
    assert isinstance(source, SlateInput)
    recorder = Recorder(path)
    source.start(recorder)
    started = time.monotonic()
    try:
        wait_until(lambda: bool(recorder.messages), 30, "the first message from the slate")
        time.sleep(RUN_S)
        state = source.stats.state
    finally:
        before_stop = time.monotonic()
        source.stop()
        stopped = time.monotonic()
        recorder.file.close()
    return Recording(path, recorder, source, state, before_stop - started, stopped - before_stop)


def ffprobe(path: Path, *args: str) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"ffprobe cannot read {path}: {result.stderr}"
    return json.loads(result.stdout)


def packets(path: Path, stream: str) -> list[dict]:
    found = ffprobe(path, "-select_streams", stream, "-show_entries", "packet=pts,dts,flags")["packets"]
    assert found, f"no {stream} packets in {path}"
    return found


def mono_samples(path: Path) -> array:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "48000",
         "-f", "f32le", "-"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    samples = array("f")
    samples.frombytes(result.stdout)
    return samples


def test_it_is_one_h264_video_and_one_aac_audio_of_the_configured_size(recording: Recording) -> None:
    streams = ffprobe(recording.path, "-show_entries", "stream=codec_type,codec_name,width,height,sample_rate")
    video = [stream for stream in streams["streams"] if stream["codec_type"] == "video"]
    audio = [stream for stream in streams["streams"] if stream["codec_type"] == "audio"]
    assert [(stream["codec_name"], stream["width"], stream["height"]) for stream in video] == [("h264", WIDTH, HEIGHT)]
    assert [(stream["codec_name"], stream["sample_rate"]) for stream in audio] == [("aac", "48000")]


def test_the_whole_recording_decodes_without_errors(recording: Recording) -> None:
    assert decode_problems(recording.path) == []


def test_it_plays_in_real_time_not_in_bursts(recording: Recording) -> None:
    duration = float(ffprobe(recording.path, "-show_entries", "format=duration")["format"]["duration"])
    assert recording.ran_s * 0.6 <= duration <= recording.ran_s + 2.0
    arrivals, sizes = recording.recorder.arrivals, [len(message) for message in recording.recorder.messages]
    assert arrivals[-1] - arrivals[0] >= recording.ran_s * 0.6
    # No half second carries more than half of what was sent.
    busiest = max(
        sum(size for when, size in zip(arrivals, sizes, strict=True) if start <= when < start + 0.5)
        for start in arrivals
    )
    assert busiest <= sum(sizes) / 2


def test_every_message_is_whole_ts_packets(recording: Recording) -> None:
    messages = recording.recorder.messages
    assert all(len(message) == 7 * 188 for message in messages[:-1])
    assert 0 < len(messages[-1]) <= 7 * 188
    assert len(messages[-1]) % 188 == 0
    assert all(message[offset] == 0x47 for message in messages for offset in range(0, len(message), 188))
    counters = recording.source.stats.ts.counters  # type: ignore[union-attr]
    assert (counters.sync_errors, counters.cc_errors) == (0, 0)
    # PAT and PMT at least every half second, so a switch to the slate finds them at once.
    assert counters.pat_seen >= 2 * recording.ran_s
    assert counters.pmt_seen >= 2 * recording.ran_s


def test_timestamps_keep_growing_across_the_loop(recording: Recording) -> None:
    video = packets(recording.path, "v:0")
    assert len(video) >= 2.5 * FPS, "fewer than two and a half loops recorded"
    pts = [int(packet["pts"]) for packet in video]
    assert all(later - earlier == 90000 // FPS for earlier, later in pairwise(pts))
    keyframes = [index for index, packet in enumerate(video) if "K" in packet["flags"]]
    assert keyframes[0] == 0
    assert all(later - earlier <= FPS for earlier, later in pairwise(keyframes))
    assert len(video) - 1 - keyframes[-1] < FPS
    audio = [int(packet["pts"]) for packet in packets(recording.path, "a:0")]
    assert all(later > earlier for earlier, later in pairwise(audio))


def test_the_tone_is_steady_with_no_click_where_the_clip_loops(recording: Recording) -> None:
    samples = mono_samples(recording.path)
    steady = samples[4800:-4800]  # the decoder's first and last frames fade in and out
    assert len(steady) >= 2.5 * 48000
    crossings = sum(1 for earlier, later in pairwise(steady) if (earlier < 0) != (later < 0))
    assert crossings / 2 / (len(steady) / 48000) == pytest.approx(TONE_HZ, rel=0.02)
    # A sine changes by at most peak * 2 pi f / rate from one sample to the next; a seam would jump.
    peak = max(abs(sample) for sample in steady)
    assert peak > 0.05
    limit = peak * 2 * math.pi * TONE_HZ / 48000 * 1.5
    assert max(abs(later - earlier) for earlier, later in pairwise(steady)) <= limit


def test_the_text_is_shown_in_a_box_over_the_bars(recording: Recording) -> None:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(recording.path), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    luma = result.stdout
    assert len(luma) == WIDTH * HEIGHT
    # The middle of the text box (centred, a third of the way down): white letters on black, where
    # the bars there are all shades between.
    rows = range(HEIGHT // 3 - 3, HEIGHT // 3 + 3)
    band = bytes(value for row in rows for value in luma[row * WIDTH + WIDTH // 2 - 50 : row * WIDTH + WIDTH // 2 + 50])
    assert min(band) < 24
    assert max(band) > 230
    assert sum(1 for value in band if 40 <= value <= 200) < len(band) / 10


def test_it_reports_connected_while_running_and_stops_promptly(recording: Recording) -> None:
    assert recording.state_while_running == "connected"
    assert recording.source.stats.state == "stopped"
    assert recording.stop_s < 2.0
    assert recording.source.stats.meter.bytes == recording.path.stat().st_size
    assert recording.source.stats.connects == 1


def test_defaults_and_options() -> None:
    source = build_input(slate_config())
    assert isinstance(source, SlateInput)
    settings = source.settings
    assert (settings.width, settings.height, settings.fps, settings.tone_hz, settings.text) == (1280, 720, 25, 1000, "")
    settings = SlateInput(slate_config(fps="30000/1001", tone_hz="0", text=" Back soon ")).settings
    assert (float(settings.fps), settings.frames_per_loop, settings.tone_hz, settings.text) == (
        pytest.approx(29.97, abs=0.01),
        29,
        0,
        "Back soon",
    )


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"width": "wide"}, "width='wide' is not a number"),
        ({"height": "0"}, "height='0' is out of range"),
        ({"width": "641"}, "must be even"),
        ({"fps": "0"}, "fps='0' is out of range"),
        ({"tone_hz": "-5"}, "tone_hz='-5' is out of range"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(options: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        build_input(slate_config(**options))


def test_a_missing_encoder_is_named_when_the_slate_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clip, "VIDEO_ENCODER", "no_such_h264_encoder")
    source = SlateInput(slate_config())
    with pytest.raises(ValueError, match="no_such_h264_encoder"):
        source.start(lambda data, length: None)
    assert source.stats.state != "connected"
    source.stop()
    assert source.stats.state == "stopped"
