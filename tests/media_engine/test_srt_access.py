"""Who may publish on a shared SRT port: stream IDs route publishers, passphrases keep others out."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from media_engine.config import SrtSettings
from media_engine.relay import Relay
from media_engine.srt import errors
from media_engine.srt.errors import SrtError
from media_engine.srt.link import dial
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import ffmpeg_publish, ffmpeg_srt_url, free_udp_port, wait_until
from tests.support.processes import RunningProcess

PASSPHRASE = "studio-secret-42"


def publish_once(sample_ts: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "info", "-i", str(sample_ts), "-t", "1", "-c", "copy", "-f", "mpegts", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_wrong_passphrase_is_rejected_and_said_why_and_the_right_one_gets_in(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port, play = free_udp_port(), free_udp_port()
    relay = relays(
        srt_endpoint("in", mode="listener", port=port, streamid="cam", passphrase=PASSPHRASE),
        srt_endpoint("play", mode="listener", port=play, streamid="play"),
    )
    wrong = publish_once(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="cam", passphrase="not-the-secret"))
    assert wrong.returncode != 0
    assert "passphrase" in wrong.stderr.lower()
    assert relay.input.stats.meter.bytes == 0
    wait_until(lambda: "BADSECRET" in relay.input.stats.reason, 5, "the input to say why it refused")

    missing = publish_once(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="cam"))
    assert missing.returncode != 0
    assert relay.input.stats.meter.bytes == 0

    encoder = ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="cam", passphrase=PASSPHRASE))
    processes.append(encoder)
    wait_until(lambda: relay.input.stats.meter.bytes > 100_000, 20, "encrypted media to arrive")
    snapshot = relay.input.snapshot()
    assert snapshot["state"] == "connected"
    assert snapshot["ts"]["sync_errors"] == 0, "decrypted payload must be clean MPEG-TS"
    assert snapshot["srt"]["packets_undecrypted"] == 0


def test_two_stream_ids_on_one_port_reach_their_own_routes(
    sample_ts: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    port = free_udp_port()
    news = relays(
        srt_endpoint("news-in", mode="listener", port=port, streamid="news"),
        srt_endpoint("news-out", mode="listener", port=free_udp_port(), streamid="x"),
        name="news",
    )
    sport = relays(
        srt_endpoint("sport-in", mode="listener", port=port, streamid="sport"),
        srt_endpoint("sport-out", mode="listener", port=free_udp_port(), streamid="x"),
        name="sport",
    )
    processes.append(ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="news")))
    wait_until(lambda: news.input.stats.meter.bytes > 50_000, 20, "the news publisher")
    assert sport.input.stats.meter.bytes == 0, "one publisher must not leak into another route"
    processes.append(ffmpeg_publish(sample_ts, ffmpeg_srt_url("127.0.0.1", port, streamid="sport")))
    wait_until(lambda: sport.input.stats.meter.bytes > 50_000, 20, "the sport publisher")
    assert news.input.stats.peer != sport.input.stats.peer


def test_unknown_stream_id_is_rejected_with_a_reason_the_caller_sees(relays: Callable[..., Relay]) -> None:
    port = free_udp_port()
    relays(
        srt_endpoint("in", mode="listener", port=port, streamid="known"),
        srt_endpoint("play", mode="listener", port=free_udp_port(), streamid="x"),
    )
    with pytest.raises(SrtError, match="unknown stream ID") as rejected:
        dial(SrtSettings(mode="caller", host="127.0.0.1", port=port, streamid="guess"), sender=True)
    assert rejected.value.reject_reason == errors.REJX_NOTFOUND


def test_the_same_stream_id_cannot_be_served_twice_on_one_port(relays: Callable[..., Relay]) -> None:
    port = free_udp_port()
    relays(srt_endpoint("a", mode="listener", port=port, streamid="cam"))
    with pytest.raises(SrtError, match="already served"):
        relays(srt_endpoint("b", mode="listener", port=port, streamid="cam"))
