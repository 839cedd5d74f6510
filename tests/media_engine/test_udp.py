"""MPEG-TS over UDP between real peers: unicast through an in-process relay, multicast (any-source
and source-specific) through the command-line relay inside a network namespace of the test's own,
and garbage on the input port."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig
from media_engine.relay import Relay
from media_engine.switcher import SwitchEvent
from tests.media_engine.conftest import srt_endpoint
from tests.peers.media import (
    decode_problems,
    duration_s,
    ffmpeg_publish,
    ffmpeg_record,
    finish,
    free_udp_port,
    probe,
    slt_to_file,
    slt_url,
    wait_until,
)
from tests.peers.netns import NetworkNamespace
from tests.peers.udp_probe import UdpCapture, udp_ports_bound
from tests.support.processes import REPO_ROOT, RunningProcess, stop_process_tree

PACKET = 188
# ffmpeg reading UDP ignores one Ctrl-C while it waits for data, and a second one loses the end of
# the file: a recorder is told instead to end by itself once the stream has stopped this long.
RECORDER_IDLE_S = 8
NULL_MESSAGE = (bytes([0x47, 0x1F, 0xFF, 0x10]) + b"\xff" * 184) * 7  # seven TS null packets


def udp_endpoint(name: str, host: str = "", port: int = 0, **options: str) -> EndpointConfig:
    return EndpointConfig(id=name, name=name, protocol="udp", host=host, port=port, options=options)


def recording_url(host: str, port: int) -> str:
    return f"udp://{host}:{port}?timeout={RECORDER_IDLE_S * 1_000_000}"


def end_recording(recorder: RunningProcess) -> None:
    finish(recorder, settle_s=RECORDER_IDLE_S + 20)
    assert recorder.popen.returncode == 0, recorder.tail()


def program_ids(path: Path) -> set[int]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "program=program_id", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {program["program_id"] for program in json.loads(result.stdout)["programs"]}


def test_ffmpeg_to_udp_input_to_udp_outputs_to_ffmpeg(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ingest, play, raw = free_udp_port(), free_udp_port(), free_udp_port()
    recorded = tmp_path / "recorded.ts"
    with UdpCapture(raw) as capture:
        relay = relays(
            udp_endpoint("in", "127.0.0.1", ingest),
            udp_endpoint("play", "127.0.0.1", play),
            udp_endpoint("raw", "127.0.0.1", raw),
        )
        source = relay.input
        assert source.stats.state == "listening"
        assert source.link_up()
        recorder = ffmpeg_record(recording_url("127.0.0.1", play), recorded)
        processes.append(recorder)
        wait_until(lambda: play in udp_ports_bound(), 15, "ffmpeg to listen")

        encoder = ffmpeg_publish(sample_ts, f"udp://127.0.0.1:{ingest}?pkt_size=1316")
        processes.append(encoder)
        wait_until(lambda: source.stats.state == "connected", 15, "the first datagram")
        assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
        # A second of silence after the last datagram: everything sent has been read by then.
        wait_until(lambda: source.stats.state == "listening", 15, "the input to notice the silence")
        wait_until(lambda: capture.bytes == source.stats.meter.bytes, 10, "the raw receiver")
        snapshot = relay.snapshot()
        end_recording(recorder)
        raw_file = capture.save(tmp_path / "raw.ts")

    received = snapshot["inputs"][0]
    assert received["bytes"] > 500_000
    assert received["bytes"] % PACKET == 0
    assert received["messages"] == capture.datagrams
    assert received["ts"]["sync_errors"] == received["ts"]["cc_errors"] == 0
    assert received["ts"]["pat_seen"] > 0
    assert received["ts"]["pmt_seen"] > 0
    assert received["peer"].startswith("127.0.0.1:")
    assert received["reason"].startswith("no data for ")
    assert (received["connects"], received["disconnects"]) == (1, 1)
    for output in snapshot["outputs"]:
        assert output["state"] == "connected"
        assert (output["bytes"], output["messages"]) == (received["bytes"], received["messages"])
        assert output["send_errors"] == output["dropped_messages"] == 0
    assert snapshot["outputs"][0]["peer"] == f"127.0.0.1:{play}"
    # The datagrams went out exactly as they came in.
    assert raw_file.stat().st_size == received["bytes"]
    assert decode_problems(raw_file) == []
    for recording in (raw_file, recorded):
        assert duration_s(recording) > duration_s(sample_ts) - 0.5
    assert {s["codec_type"] for s in probe(recorded)["streams"]} == {"video", "audio"}
    assert decode_problems(recorded) == []
    health = relay.switcher.health[0]
    assert source.link_up()
    assert not health.healthy
    assert health.reason.startswith("no data for")


def test_garbage_is_counted_and_the_ts_that_follows_is_relayed(
    sample_ts: Path, tmp_path: Path, processes: list[RunningProcess], relays: Callable[..., Relay]
) -> None:
    ingest, play, srt_play = free_udp_port(), free_udp_port(), free_udp_port()
    events: list[SwitchEvent] = []
    relay = relays(
        udp_endpoint("in", "127.0.0.1", ingest),
        udp_endpoint("play", "127.0.0.1", play),
        srt_endpoint("srt play", mode="listener", port=srt_play, streamid="play"),
        on_event=events.append,
    )
    source, output, srt_output = relay.input, relay.outputs[0], relay.outputs[1]
    # An SRT player takes whatever the input gets, garbage included: nothing may cost it its connection.
    processes.append(slt_to_file(slt_url("127.0.0.1", srt_play, streamid="play"), tmp_path / "srt.ts"))
    wait_until(lambda: len(srt_output.snapshot()["readers"]) == 1, 15, "the SRT player to connect")
    assert source.stats.ts is not None
    counters = source.stats.ts.counters
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Valid (null) packets first, so the input is up when the garbage comes.
        deadline = time.monotonic() + 15
        while not relay.switcher.health[0].healthy:
            assert time.monotonic() < deadline, f"the input never came up: {relay.switcher.health[0].reason}"
            sender.sendto(NULL_MESSAGE, ("127.0.0.1", ingest))
            time.sleep(0.02)

        rng = random.Random(20240607)
        sizes = (1316, 188, 1500, 3000, rng.randrange(1, 1400))
        garbage = [rng.randbytes(rng.choice(sizes)) for _ in range(300)]
        garbage = [b"\x00" + datagram[1:] for datagram in garbage]  # none starts like a TS packet
        # Datagrams longer than 1316 bytes go on in 1316-byte pieces, as an SRT output takes no more.
        pieces = sum(-(-len(datagram) // 1316) for datagram in garbage)
        messages, errors = source.stats.meter.messages, counters.sync_errors
        for datagram in garbage:
            sender.sendto(datagram, ("127.0.0.1", ingest))
            time.sleep(0.001)
        wait_until(lambda: source.stats.meter.messages == messages + pieces, 15, "the garbage to be read")
        assert counters.sync_errors - errors >= len(garbage)
        wait_until(
            lambda: any(e.kind == "input_down" and "TS sync" in e.data.get("reason", "") for e in events),
            10,
            "the error burst to take the input down",
        )
        assert source.stats.state == "connected"
        assert source.link_up()
        # Nobody listens on the output's port yet: the ICMP errors are counted, sending goes on.
        assert output.stats.state == "connected"
        assert output.send_errors > 0
        assert "ECONNREFUSED" in output.stats.reason

        recorded = tmp_path / "recorded.ts"
        recorder = ffmpeg_record(recording_url("127.0.0.1", play), recorded)
        processes.append(recorder)
        wait_until(lambda: play in udp_ports_bound(), 15, "ffmpeg to listen")
        # The last refusal may still be pending on the output's socket: let a null packet take it.
        sent_before = output.stats.meter.bytes
        deadline = time.monotonic() + 15
        while output.stats.meter.bytes == sent_before:
            assert time.monotonic() < deadline, output.snapshot()
            sender.sendto(NULL_MESSAGE, ("127.0.0.1", ingest))
            time.sleep(0.05)
    finally:
        sender.close()

    time.sleep(0.2)
    received_before, sent_before = source.stats.meter.bytes, output.stats.meter.bytes
    errors_before = output.send_errors
    encoder = ffmpeg_publish(sample_ts, f"udp://127.0.0.1:{ingest}?pkt_size=1316")
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    wait_until(lambda: source.stats.state == "listening", 15, "the input to notice the silence")
    srt_play_stats = srt_output.snapshot()
    end_recording(recorder)

    assert srt_play_stats["dropped_readers"] == 0
    assert srt_play_stats["readers"][0]["bytes"] == source.stats.meter.bytes
    relayed = source.stats.meter.bytes - received_before
    assert relayed > 500_000
    assert output.stats.meter.bytes - sent_before == relayed
    assert output.send_errors == errors_before
    assert output.stats.reason == ""  # the refusals are long past
    assert duration_s(recorded) > duration_s(sample_ts) - 0.5
    assert decode_problems(recorded) == []
    down = next(index for index, event in enumerate(events) if event.kind == "input_down")
    assert "TS sync" in events[down].data["reason"]
    assert any(event.kind == "input_up" for event in events[down:])  # up again on the real TS


def test_bad_settings_are_refused_when_the_relay_is_built(relays: Callable[..., Relay]) -> None:
    port = free_udp_port()
    refused = (
        (udp_endpoint("in", "127.0.0.1", port, source="10.0.0.1"), "only to a multicast group"),
        (udp_endpoint("in", "239.1.1.1", port, interface="eth0"), "must be an IP address"),
        (udp_endpoint("in", "239.1.1.1", port, ttl="4"), "unknown option"),
        (udp_endpoint("in", "localhost", port), "must be an IP address"),
        (udp_endpoint("in", "239.1.1.1"), "a port from 1 to 65535"),
    )
    output = udp_endpoint("out", "127.0.0.1", port)
    for source, message in refused:
        with pytest.raises(ValueError, match=message):
            relays(source, output)
    for host, options, message in (
        ("127.0.0.1", {"ttl": "0"}, "ttl must be"),
        ("239.1.1.1", {"ttl": "x"}, "ttl must be"),
        ("239.1.1.1", {"interface": "::1"}, "local IPv4 address"),
        ("", {}, "destination's IP address"),
    ):
        with pytest.raises(ValueError, match=message):
            relays(udp_endpoint("in", "", port), udp_endpoint("out", host, port + 1, **options))


def test_a_taken_port_fails_the_start_with_the_reason(relays: Callable[..., Relay]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))  # without SO_REUSEADDR: nobody else may bind it
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot receive on udp 127.0.0.1:{port}"):
            relays(udp_endpoint("in", "127.0.0.1", port), udp_endpoint("out", "127.0.0.1", free_udp_port()))


def test_cli_refuses_unknown_udp_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "media_engine", "relay",
         "--input", "udp://:5000?pkt_size=1316", "--output", "udp://127.0.0.1:5001"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown option 'pkt_size'" in result.stderr


# Multicast, inside a network namespace: senders, the command-line relay and receivers all run in it.


@pytest.fixture
def netns(processes: list[RunningProcess]) -> Iterator[NetworkNamespace]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    namespace = NetworkNamespace().create()
    try:
        yield namespace
    finally:
        # A process inside keeps the namespace alive after its name is gone: stop them first.
        for process in processes:
            stop_process_tree(process)
        namespace.delete()
    assert not namespace.exists()


def cli_relay(ns: NetworkNamespace, inputs: list[str], outputs: list[str]) -> RunningProcess:
    argv = [sys.executable, "-m", "media_engine", "relay", "--log-level", "WARNING", "--stats-interval", "0.5"]
    for url in inputs:
        argv += ["--input", url]
    for url in outputs:
        argv += ["--output", url]
    return ns.start(argv, name="relay cli")


def last_stats(relay: RunningProcess) -> dict:
    lines = [line for line in relay.output().splitlines() if line.startswith("{")]
    if not lines:
        relay.fail_if_exited("a stats line")
        return {}
    return json.loads(lines[-1])


def ns_send(ns: NetworkNamespace, source: Path, url: str, *, service_id: int) -> RunningProcess:
    """ffmpeg sends a file in real time from inside the namespace; ``service_id`` tells the
    senders' streams apart in a recording."""
    return ns.start(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-re", "-i", str(source), "-c", "copy",
         "-f", "mpegts", "-mpegts_service_id", str(service_id), url],
        name=f"ffmpeg send {service_id}",
    )  # fmt: skip


def ns_record(ns: NetworkNamespace, url: str, target: Path) -> RunningProcess:
    return ns.start(
        ["ffmpeg", "-nostdin", "-loglevel", "warning", "-y", "-i", url, "-c", "copy", "-f", "mpegts", str(target)],
        name="ffmpeg record",
    )


def ns_probe(ns: NetworkNamespace, group: str, port: int) -> RunningProcess:
    """Counts datagrams by sender and TTL (``tests.peers.udp_probe``) until stopped."""
    probe_process = ns.start(
        [sys.executable, "-m", "tests.peers.udp_probe", "--host", group, "--port", str(port),
         "--interface", "127.0.0.1", "--count", "1000000000", "--timeout", "300"],
        name="udp probe",
    )  # fmt: skip
    wait_until(lambda: '"listening"' in probe_process.output(), 15, "the probe to join")
    return probe_process


def probe_summary(probe_process: RunningProcess) -> dict:
    finish(probe_process, settle_s=0)
    return json.loads(probe_process.output().strip().splitlines()[-1])


def test_multicast_in_and_out(
    netns: NetworkNamespace, sample_ts: Path, tmp_path: Path, processes: list[RunningProcess]
) -> None:
    group_in, group_unused, group_out = "239.10.0.1", "239.10.0.2", "239.10.0.9"
    port, out_port = 5000, 5002  # the namespace's own ports: nothing else binds them
    relay = cli_relay(
        netns,
        # Two inputs on one port, each joined to its own group, as in a broadcast plant.
        [f"udp://{group_in}:{port}?interface=127.0.0.1", f"udp://@{group_unused}:{port}?interface=127.0.0.1"],
        # The namespace has no route to 10.0.0.0/8: that output waits for one, the other goes on.
        [f"udp://{group_out}:{out_port}?ttl=3&interface=127.0.0.1", "udp://10.99.0.1:5003"],
    )
    processes.append(relay)
    wait_until(lambda: last_stats(relay), 20, "the relay's first stats line")
    recorded = tmp_path / "recorded.ts"
    recorder = ns_record(netns, recording_url(group_out, out_port), recorded)
    processes.append(recorder)
    wait_until(lambda: out_port in netns.udp_ports_bound(), 15, "ffmpeg to join the output group")
    tap = ns_probe(netns, group_out, out_port)
    processes.append(tap)

    encoder = ns_send(netns, sample_ts, f"udp://{group_in}:{port}?pkt_size=1316&localaddr=127.0.0.1", service_id=1)
    processes.append(encoder)
    assert encoder.popen.wait(timeout=60) == 0, encoder.tail()
    wait_until(
        lambda: last_stats(relay)["inputs"][0]["reason"].startswith("no data for"), 20, "the relay to see the end"
    )
    stats = last_stats(relay)
    end_recording(recorder)
    tapped = probe_summary(tap)

    main, unused = stats["inputs"]
    output, unroutable = stats["outputs"]
    assert main["bytes"] > 500_000
    assert main["peer"].startswith("127.0.0.1:")
    assert main["ts"]["sync_errors"] == main["ts"]["cc_errors"] == 0
    assert unused["bytes"] == 0
    assert unused["state"] == "listening"
    assert output["bytes"] == main["bytes"]
    assert output["messages"] == main["messages"]
    assert output["send_errors"] == output["dropped_messages"] == 0
    assert output["ttl"] == 3
    assert stats["switcher"]["active"] == "input1"
    assert unroutable["state"] == "connecting"
    assert "ENETUNREACH" in unroutable["reason"]
    assert unroutable["bytes"] == 0
    assert unroutable["dropped_messages"] == main["messages"]
    # What arrived on the output group: every datagram, from the interface's address, with TTL 3.
    assert tapped["bytes"] == output["bytes"]
    assert tapped["senders"] == {"127.0.0.1": output["messages"]}
    assert tapped["ttls"] == [3]
    assert duration_s(recorded) > duration_s(sample_ts) - 0.5
    assert decode_problems(recorded) == []
    relay.popen.terminate()
    assert relay.popen.wait(timeout=15) == 0


def test_source_specific_multicast_ignores_other_senders(
    netns: NetworkNamespace, sample_ts: Path, tmp_path: Path, processes: list[RunningProcess]
) -> None:
    group, port, out_port = "239.10.0.1", 5000, 5002
    relay = cli_relay(
        netns, [f"udp://{group}:{port}?interface=127.0.0.1&source=127.0.0.1"], [f"udp://127.0.0.1:{out_port}"]
    )
    processes.append(relay)
    wait_until(lambda: last_stats(relay), 20, "the relay's first stats line")
    recorded = tmp_path / "recorded.ts"
    recorder = ns_record(netns, recording_url("127.0.0.1", out_port), recorded)
    processes.append(recorder)
    wait_until(lambda: out_port in netns.udp_ports_bound(), 15, "ffmpeg to listen")
    # Joined to the group for any source, the probe shows that both senders really reach it.
    tap = ns_probe(netns, group, port)
    processes.append(tap)

    url = f"udp://{group}:{port}?pkt_size=1316&localaddr="
    intruder = ns_send(netns, sample_ts, url + "127.0.0.2", service_id=2)
    processes.append(intruder)
    chosen = ns_send(netns, sample_ts, url + "127.0.0.1", service_id=1)
    processes.append(chosen)
    for sender in (intruder, chosen):
        assert sender.popen.wait(timeout=60) == 0, sender.tail()
    wait_until(
        lambda: last_stats(relay)["inputs"][0]["reason"].startswith("no data for"), 20, "the relay to see the end"
    )
    stats = last_stats(relay)
    end_recording(recorder)
    tapped = probe_summary(tap)

    received, output = stats["inputs"][0], stats["outputs"][0]
    assert tapped["senders"].get("127.0.0.2", 0) > 100, tapped
    assert received["peer"].startswith("127.0.0.1:")
    assert received["messages"] == tapped["senders"]["127.0.0.1"]
    assert received["ts"]["sync_errors"] == received["ts"]["cc_errors"] == 0
    assert output["bytes"] == received["bytes"] > 500_000
    assert program_ids(recorded) == {1}
    assert decode_problems(recorded) == []
