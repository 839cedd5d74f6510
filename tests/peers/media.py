"""ffmpeg, ffprobe and srt-live-transmit as test peers.

ffmpeg's SRT URLs take times in microseconds (``latency=120000``); srt-live-transmit's take
milliseconds (``latency=120``). The helpers here take milliseconds and convert.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from tests.support.processes import RunningProcess, environment, start_process

# Neither peer URL-decodes the stream ID, so characters common in stream IDs stay as they are.
SAFE = "/:#!,="


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def make_ts(path: Path, seconds: int = 8, bitrate: str = "1M") -> Path:
    """A short MPEG-TS with H.264 video (1 s GOP) and AAC audio."""
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", bitrate,
            "-c:a", "aac", "-f", "mpegts", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def ffmpeg_srt_url(host: str, port: int, *, latency_ms: int = 120, **options: str) -> str:
    query = {"latency": str(latency_ms * 1000), **options}
    return f"srt://{host}:{port}?{urlencode(query, safe=SAFE)}"


def slt_url(host: str, srt_port: int, **options: str) -> str:
    query = f"?{urlencode(options, safe=SAFE)}" if options else ""
    return f"srt://{host}:{srt_port}{query}"


def ffmpeg_publish(source: Path, url: str, *, loop: bool = False) -> RunningProcess:
    """Send a file in real time, copying its streams, as an encoder would."""
    loop_args = ["-stream_loop", "-1"] if loop else []
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re", *loop_args, "-i", str(source),
         "-c", "copy", "-f", "mpegts", url],
        env=environment(),
        name="ffmpeg publish",
    )  # fmt: skip


def ffmpeg_live_encoder(
    url: str, *, tsid: int, tone_hz: int, pattern: str = "testsrc2", gop: int = 25, bitrate: str = "800k"
) -> RunningProcess:
    """A live encoder: synthetic picture and tone, encoded in real time and sent as MPEG-TS.

    ``tsid`` becomes both the transport_stream_id and the program number (service id), so every
    PAT says which encoder it came from; PIDs are ffmpeg's defaults, the same for every encoder,
    as with two identically set-up encoders feeding one route. Nothing is held back on the way out:
    zerolatency keeps x264 from queueing frames, ``pes_payload_size 0`` puts each audio frame in
    its own PES instead of gathering a third of a second of them, and ``flush_packets`` sends the
    end of every frame at once rather than when the next frame fills the SRT message (ffmpeg's
    automatic choice does so for SRT already; this keeps it so).
    """
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", f"{pattern}=size=320x240:rate=25",
         "-re", "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(gop), "-pix_fmt", "yuv420p",
         "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
         "-c:a", "aac", "-b:a", "64k",
         "-f", "mpegts", "-mpegts_transport_stream_id", str(tsid), "-mpegts_service_id", str(tsid),
         "-pes_payload_size", "0", "-flush_packets", "1", url],
        env=environment(),
        name=f"ffmpeg live encoder {tsid}",
    )  # fmt: skip


def ffmpeg_record(url: str, target: Path) -> RunningProcess:
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-y", "-i", url, "-c", "copy", "-f", "mpegts", str(target)],
        env=environment(),
        name="ffmpeg record",
    )


def slt(source: str, target: str) -> RunningProcess:
    return start_process(["srt-live-transmit", "-v", source, target], env=environment(), name="srt-live-transmit")


def slt_to_file(source: str, target: Path) -> RunningProcess:
    """srt-live-transmit writes files only to its standard output (``file://con``)."""
    command = f"exec srt-live-transmit -q {shlex.quote(source)} file://con > {shlex.quote(str(target))}"
    return start_process(["sh", "-c", command], env=environment(), name="srt-live-transmit to file")


def finish(process: RunningProcess, settle_s: float = 1.0) -> None:
    """Let a receiver take the last latency window (or end by itself when its sender closed), then
    stop it the way an operator would (Ctrl-C), so it flushes what it buffered."""
    try:
        process.popen.wait(timeout=settle_s)
        return
    except subprocess.TimeoutExpired:
        pass
    process.popen.send_signal(signal.SIGINT)
    try:
        process.popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        raise AssertionError(f"{process.name} ignored Ctrl-C:\n{process.tail()}") from None


def probe(path: Path) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"ffprobe cannot read {path}: {result.stderr}"
    return json.loads(result.stdout)


def duration_s(path: Path) -> float:
    return float(probe(path)["format"]["duration"])


# ffmpeg's null muxer objects when timestamps restart with another encoder's clock; a live decoder
# follows the PCR discontinuity the gateway flags there instead.
TIME_BASE_CHANGE = "non monotonically increasing dts"


def decode_problems(path: Path, *, switched: bool = False) -> list[str]:
    """Lines a decoder complains with while decoding the whole file (empty when it plays clean).
    ``switched``: the file crosses input switches, where the time base legitimately changes."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return [line for line in lines if not (switched and TIME_BASE_CHANGE in line)]


BARS_LUMA = 130  # smptebars' left bar is 75 % white (luma ~180); testsrc2 is dark there (~70-90)


def left_edge_luma(path: Path) -> list[int]:
    """The mean luma of a patch at the left edge of every decoded picture: tells an encoder sending
    smptebars from one sending testsrc2 without comparing whole pictures."""
    import av

    lumas = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            data, stride = bytes(plane), plane.line_size
            patch = [data[y * stride + x] for y in range(20, 100, 4) for x in range(5, 40, 4)]
            lumas.append(sum(patch) // len(patch))
    return lumas


def ffmpeg_rtmp_publish(source: Path, url: str, *, loop: bool = False, extra: tuple[str, ...] = ()) -> RunningProcess:
    """Publish a file over RTMP in real time, copying its streams, as an encoder would."""
    loop_args = ["-stream_loop", "-1"] if loop else []
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re", *loop_args, "-i", str(source),
         "-c", "copy", *extra, "-f", "flv", url],
        env=environment(),
        name="ffmpeg rtmp publish",
    )  # fmt: skip


def ffmpeg_rtmp_encoder(
    url: str, *, pattern: str = "testsrc2", size: str = "320x240", tone_hz: int = 1000
) -> RunningProcess:
    """A live RTMP encoder: synthetic picture and tone encoded in real time (libx264 and AAC)."""
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", f"{pattern}=size={size}:rate=25",
         "-re", "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
         "-b:v", "800k", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url],
        env=environment(),
        name=f"ffmpeg rtmp encoder {pattern}",
    )  # fmt: skip


def make_av_ts(
    path: Path, *, seconds: int, size: str = "1920x1080", rate: int = 30, bitrate: str = "6M", tone_hz: int = 1000
) -> Path:
    """An MPEG-TS of H.264 (GOP of one second) and 48 kHz AAC, of any size and frame rate: a
    contribution feed for a transcoder to work on."""
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
            "-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate), "-b:v", bitrate,
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts", str(path),
        ],
        check=True,
        timeout=180,
    )  # fmt: skip
    return path


# Where ``ffmpeg_flash_encoder`` draws its flash (a white box) on its 320x240 picture, and a patch
# of plain background that tells the encoders apart.
FLASH_BOX = (0, 0, 160, 120)  # x, y, width, height
BACKGROUND_PATCH = (200, 160, 100, 60)


def ffmpeg_flash_encoder(url: str, *, tsid: int, background: str = "black", ts_offset_s: float = 0) -> RunningProcess:
    """A live encoder whose picture flashes white and whose sound beeps at the same instants: for
    the first 100 ms of every second of its own clock. ``ts_offset_s`` moves its timestamps, as an
    encoder started at another time of day would have them. Picture 320x240 at 25 fps, sound
    48 kHz in 10 ms frames, so both switch on exactly at the second."""
    x, y, width, height = FLASH_BOX
    picture = (
        f"color=c={background}:size=320x240:rate=25,"
        f"drawbox=x={x}:y={y}:w={width}:h={height}:color=white:t=fill:enable='lt(mod(t,1),0.1)'"
    )
    sound = "sine=frequency=1000:sample_rate=48000:samples_per_frame=480,volume=0:enable='gte(mod(t,1),0.1)'"
    return start_process(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", picture,
         "-re", "-f", "lavfi", "-i", sound,
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
         "-b:v", "500k", "-c:a", "aac", "-b:a", "64k", "-output_ts_offset", str(ts_offset_s),
         "-f", "mpegts", "-mpegts_transport_stream_id", str(tsid), "-mpegts_service_id", str(tsid),
         "-pes_payload_size", "0", "-flush_packets", "1", url],
        env=environment(),
        name=f"ffmpeg flash encoder {tsid}",
    )  # fmt: skip
