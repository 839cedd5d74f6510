"""The impairment proxy itself, checked with plain UDP sockets before any SRT test relies on it."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers.impairment import ImpairmentProxy

REPO_ROOT = Path(__file__).resolve().parents[2]
# Sequence number and send time (monotonic ns), then padding to a typical media datagram size.
HEADER = struct.Struct("!IQ")
PAYLOAD_SIZE = 200
WAIT_S = 20.0


class Peer:
    """A loopback UDP socket that records every datagram it receives, with its arrival time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.received: list[tuple[int, int, int]] = []  # (sequence, sent_ns, arrived_ns)
        self.last_sender: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            arrived = time.monotonic_ns()
            sequence, sent = HEADER.unpack_from(data)
            self.last_sender = sender
            self.received.append((sequence, sent, arrived))

    def send(self, target: tuple[str, int], count: int) -> None:
        """Numbered datagrams, paced so neither kernel buffer nor the proxy can overflow."""
        padding = bytes(PAYLOAD_SIZE - HEADER.size)
        for sequence in range(count):
            self.sock.sendto(HEADER.pack(sequence, time.monotonic_ns()) + padding, target)
            if sequence % 20 == 19:
                time.sleep(0.001)

    def sequences(self) -> list[int]:
        return [sequence for sequence, _, _ in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    client, server = Peer(), Peer()
    yield client, server
    client.close()
    server.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def settled(proxy: ImpairmentProxy, receiver: Peer, *, upstream: bool) -> Callable[[], bool]:
    """True once everything the proxy forwarded one way has reached the receiver."""
    counters = proxy.upstream if upstream else proxy.downstream

    def check() -> bool:
        return proxy.pending == 0 and len(receiver.received) == counters.forwarded

    return check


def exchange(proxy: ImpairmentProxy, client: Peer, server: Peer, count: int) -> None:
    """``count`` datagrams client → server, then ``count`` back to where the server saw them come from."""
    client.send(proxy.listen_address, count)
    wait_for(lambda: proxy.upstream.received == count, "the proxy to read every upstream datagram")
    wait_for(settled(proxy, server, upstream=True), "upstream datagrams to arrive")
    server.send(proxy.server_side_address, count)
    wait_for(lambda: proxy.downstream.received == count, "the proxy to read every downstream datagram")
    wait_for(settled(proxy, client, upstream=False), "downstream datagrams to arrive")


def test_without_loss_every_datagram_arrives_in_order_both_ways(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    with ImpairmentProxy(forward=server.address) as proxy:
        exchange(proxy, client, server, 1000)

        assert server.sequences() == list(range(1000))
        assert client.sequences() == list(range(1000))
        assert server.last_sender == proxy.server_side_address
        assert proxy.client == client.address
        for counters in (proxy.upstream, proxy.downstream):
            assert (counters.forwarded, counters.dropped, counters.overflowed, counters.send_errors) == (1000, 0, 0, 0)


def test_loss_is_drawn_per_direction_and_matches_the_counters(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    sent = 2000
    with ImpairmentProxy(forward=server.address, loss_percent=20, seed=7) as proxy:
        exchange(proxy, client, server, sent)

        for receiver, counters in ((server, proxy.upstream), (client, proxy.downstream)):
            arrived = receiver.sequences()
            assert 0.14 <= 1 - len(arrived) / sent <= 0.26
            assert len(arrived) == counters.forwarded
            assert sent - len(arrived) == counters.dropped
            assert arrived == sorted(arrived), "the survivors keep their order"
        # Independent generators: the two directions lose different datagrams.
        assert set(server.sequences()) != set(client.sequences())


def test_the_same_seed_loses_the_same_datagrams() -> None:
    def surviving(seed: int) -> list[int]:
        client, server = Peer(), Peer()
        try:
            with ImpairmentProxy(forward=server.address, loss_percent=30, seed=seed) as proxy:
                client.send(proxy.listen_address, 300)
                wait_for(lambda: proxy.upstream.received == 300, "the proxy to read every datagram")
                wait_for(settled(proxy, server, upstream=True), "datagrams to arrive")
            return server.sequences()
        finally:
            client.close()
            server.close()

    first = surviving(11)
    assert surviving(11) == first
    assert surviving(12) != first


def test_every_datagram_waits_at_least_the_delay(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    delay_ms = 60
    with ImpairmentProxy(forward=server.address, delay_ms=delay_ms) as proxy:
        exchange(proxy, client, server, 50)

    for receiver in (server, client):
        assert len(receiver.received) == 50
        waited_ms = [(arrived - sent) / 1e6 for _, sent, arrived in receiver.received]
        assert min(waited_ms) >= delay_ms


def test_stop_joins_the_threads_and_frees_the_port(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    proxy = ImpairmentProxy(forward=server.address, delay_ms=500).start()
    listen = proxy.listen_address
    client.send(listen, 5)
    wait_for(lambda: proxy.pending == 5, "datagrams to be queued")
    proxy.stop()

    assert not proxy.running
    assert server.received == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(listen)


def test_other_senders_are_ignored_once_a_client_is_known(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    stranger = Peer()
    try:
        with ImpairmentProxy(forward=server.address) as proxy:
            client.send(proxy.listen_address, 3)
            wait_for(settled(proxy, server, upstream=True), "the client's datagrams")
            wait_for(lambda: proxy.upstream.forwarded == 3, "the client's datagrams")
            stranger.send(proxy.listen_address, 4)
            wait_for(lambda: proxy.upstream.ignored == 4, "the stranger's datagrams to be refused")
            assert len(server.received) == 3
    finally:
        stranger.close()


@pytest.mark.parametrize(
    ("forward", "listen"),
    [(("10.1.2.3", 9000), ("127.0.0.1", 0)), (("127.0.0.1", 9000), ("0.0.0.0", 0))],
)
def test_only_loopback_addresses_are_accepted(forward: tuple[str, int], listen: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        ImpairmentProxy(forward=forward, listen=listen)


def test_command_line_relays_and_reports_counters(peers: tuple[Peer, Peer]) -> None:
    client, server = peers
    command = [
        sys.executable, "-m", "tests.peers.impairment",
        "--listen", "127.0.0.1:0", "--forward", f"127.0.0.1:{server.address[1]}", "--delay-ms", "5",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("listening on 127.0.0.1:"), banner + process.stderr.read()
        port = int(banner.split()[2].rstrip(",").rpartition(":")[2])
        client.send(("127.0.0.1", port), 10)
        wait_for(lambda: len(server.received) == 10, "datagrams through the command-line proxy")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    final = json.loads(out.strip().splitlines()[-1])
    assert final["upstream"]["forwarded"] == 10
    assert final["downstream"]["forwarded"] == 0
