"""A userspace UDP impairment proxy: random loss and a fixed delay between one client and one server.

The test machines' kernels have no netem, so SRT's recovery is exercised by putting this proxy
between two peers instead. It relays datagrams both ways between the first address that sends to
the listen port (the client) and the forward address (the server). Each direction has its own
random generator, so losses in one direction say nothing about the other, and a seed makes a run
repeatable. Every datagram waits the same delay, so order is kept.

In a test::

    with ImpairmentProxy(forward=("127.0.0.1", server_port), loss_percent=2, delay_ms=20) as proxy:
        connect_caller_to(proxy.listen_address)
        ...
        assert proxy.upstream.dropped > 0

From a shell (Ctrl-C stops it and prints the counters)::

    python -m tests.peers.impairment --listen 127.0.0.1:9001 --forward 127.0.0.1:9000 --loss 2 --delay-ms 20
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import selectors
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

Address = tuple[str, int]

_MAX_DATAGRAM = 65535
# Enough kernel buffering to ride out a scheduling hiccup at tens of Mbit/s; the kernel caps it.
_SOCKET_BUFFER = 4 * 1024 * 1024
_DRAIN_BATCH = 256  # datagrams read from one socket before looking at the other again
_POLL_S = 0.05  # how quickly the threads notice stop()


@dataclass
class DirectionCounters:
    """What happened to the datagrams travelling one way. Only the proxy's threads write these."""

    received: int = 0
    forwarded: int = 0
    dropped: int = 0  # by the loss model
    overflowed: int = 0  # the delay queue was full
    send_errors: int = 0
    ignored: int = 0  # from an address that is not part of the pair


@dataclass(frozen=True)
class _Datagram:
    due: float
    upstream: bool
    payload: bytes


def resolve_loopback(host: str, port: int) -> Address:
    """The numeric address for host; refuses anything off this machine, so a test never sprays a network."""
    _family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    if not ipaddress.ip_address(address[0]).is_loopback:
        raise ValueError(f"{host}:{port} is not a loopback address; the impairment proxy stays on this machine")
    return address[0], int(address[1])


def _udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ImpairmentProxy:
    """Relays one client's datagrams to ``forward`` and the replies back, losing and delaying some.

    ``upstream`` counts client → forward, ``downstream`` forward → client. ``loss_percent`` applies
    to each direction independently. At most ``max_queued`` datagrams wait in the delay queue; more
    are counted as ``overflowed`` and dropped, so a stalled reader cannot grow memory without bound.
    """

    def __init__(
        self,
        forward: Address,
        *,
        listen: Address = ("127.0.0.1", 0),
        loss_percent: float = 0.0,
        delay_ms: float = 0.0,
        seed: int | None = None,
        max_queued: int = 50_000,
    ) -> None:
        if not 0.0 <= loss_percent <= 100.0:
            raise ValueError(f"loss_percent must be within 0..100, not {loss_percent}")
        if delay_ms < 0:
            raise ValueError(f"delay_ms must not be negative, not {delay_ms}")
        self.forward = resolve_loopback(*forward)
        self._listen_request = resolve_loopback(*listen)
        self.loss = loss_percent / 100.0
        self.delay_s = delay_ms / 1000.0
        self.max_queued = max_queued
        self.upstream = DirectionCounters()
        self.downstream = DirectionCounters()
        self.client: Address | None = None
        # String seeds are hashed deterministically, so one seed gives two unrelated, repeatable streams.
        self._rng_up = random.Random(None if seed is None else f"{seed}/upstream")
        self._rng_down = random.Random(None if seed is None else f"{seed}/downstream")
        self._queue: deque[_Datagram] = deque()
        self._wakeup = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client_side: socket.socket | None = None
        self._server_side: socket.socket | None = None

    # lifecycle

    def start(self) -> ImpairmentProxy:
        if self._threads:
            raise RuntimeError("the proxy is already running")
        client_side = _udp_socket(*self._listen_request)
        try:
            server_side = _udp_socket(self.forward[0], 0)
        except OSError:
            client_side.close()
            raise
        self._client_side, self._server_side = client_side, server_side
        self._stop.clear()
        self._threads = [
            threading.Thread(
                target=self._receive_loop, args=(client_side, server_side), name="impairment-rx", daemon=True
            ),
            threading.Thread(
                target=self._send_loop, args=(client_side, server_side), name="impairment-tx", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying, join both threads and free the ports. Datagrams still waiting are discarded."""
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        with self._wakeup:
            self._queue.clear()
        for sock in (self._client_side, self._server_side):
            if sock is not None:
                sock.close()
        self._client_side = self._server_side = None

    def __enter__(self) -> ImpairmentProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # observation

    @property
    def listen_address(self) -> Address:
        """Where the client sends to (the real port when 0 was asked for)."""
        if self._client_side is None:
            raise RuntimeError("the proxy is not running")
        host, port = self._client_side.getsockname()[:2]
        return host, port

    @property
    def server_side_address(self) -> Address:
        """The address the forward peer sees datagrams coming from (and replies to)."""
        if self._server_side is None:
            raise RuntimeError("the proxy is not running")
        host, port = self._server_side.getsockname()[:2]
        return host, port

    @property
    def pending(self) -> int:
        """Datagrams accepted but not yet sent (waiting out their delay)."""
        with self._wakeup:
            return len(self._queue)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def counters(self) -> dict[str, Any]:
        return {
            "client": f"{self.client[0]}:{self.client[1]}" if self.client else None,
            "upstream": asdict(self.upstream),
            "downstream": asdict(self.downstream),
            "pending": self.pending,
        }

    # the two threads

    def _receive_loop(self, client_side: socket.socket, server_side: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(client_side, selectors.EVENT_READ, True)
            selector.register(server_side, selectors.EVENT_READ, False)
            while not self._stop.is_set():
                for key, _ in selector.select(_POLL_S):
                    self._drain(key.fileobj, upstream=key.data)  # type: ignore[arg-type]

    def _drain(self, sock: socket.socket, *, upstream: bool) -> None:
        for _ in range(_DRAIN_BATCH):
            try:
                payload, sender = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Closed under us by stop(), or a transient error: either way there is nothing to read.
                return
            self._admit(payload, (sender[0], sender[1]), upstream=upstream)

    def _admit(self, payload: bytes, sender: Address, *, upstream: bool) -> None:
        counters = self.upstream if upstream else self.downstream
        if upstream:
            if self.client is None:
                self.client = sender
            elif sender != self.client:
                counters.ignored += 1
                return
        elif sender != self.forward or self.client is None:
            counters.ignored += 1
            return
        counters.received += 1
        rng = self._rng_up if upstream else self._rng_down
        if self.loss and rng.random() < self.loss:
            counters.dropped += 1
            return
        with self._wakeup:
            if len(self._queue) >= self.max_queued:
                counters.overflowed += 1
                return
            self._queue.append(_Datagram(time.monotonic() + self.delay_s, upstream, payload))
            self._wakeup.notify()

    def _send_loop(self, client_side: socket.socket, server_side: socket.socket) -> None:
        while True:
            datagram = self._next_due()
            if datagram is None:
                return
            if datagram.upstream:
                self._send(server_side, self.forward, datagram.payload, self.upstream)
            elif self.client is not None:
                self._send(client_side, self.client, datagram.payload, self.downstream)

    def _next_due(self) -> _Datagram | None:
        """Wait for the oldest datagram's time. The delay is the same for all, so FIFO is time order."""
        with self._wakeup:
            while not self._stop.is_set():
                if not self._queue:
                    self._wakeup.wait(_POLL_S)
                    continue
                wait = self._queue[0].due - time.monotonic()
                if wait <= 0:
                    return self._queue.popleft()
                self._wakeup.wait(min(wait, _POLL_S))
            return None

    @staticmethod
    def _send(sock: socket.socket, target: Address, payload: bytes, counters: DirectionCounters) -> None:
        try:
            sock.sendto(payload, target)
        except OSError:
            # A full socket buffer or an absent peer: on a real network this datagram would be lost too.
            counters.send_errors += 1
            return
        counters.forwarded += 1


# command line


def _host_port(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.peers.impairment",
        description="UDP loss and delay between a client and a server, on loopback.",
    )
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0), help="HOST:PORT the client sends to")
    parser.add_argument("--forward", type=_host_port, required=True, help="HOST:PORT of the server")
    parser.add_argument("--loss", type=float, default=0.0, help="percent of datagrams lost, in each direction")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay added to every datagram")
    parser.add_argument("--seed", type=int, default=None, help="repeatable losses")
    parser.add_argument("--stats-interval", type=float, default=0.0, help="seconds between counter lines (0: none)")
    args = parser.parse_args(argv)

    try:
        proxy = ImpairmentProxy(
            args.forward, listen=args.listen, loss_percent=args.loss, delay_ms=args.delay_ms, seed=args.seed
        ).start()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    host, port = proxy.listen_address
    print(f"listening on {host}:{port}, forwarding to {args.forward[0]}:{args.forward[1]}", flush=True)
    try:
        while not stop.wait(args.stats_interval or 3600):
            if args.stats_interval:
                print(json.dumps(proxy.counters()), flush=True)
    finally:
        proxy.stop()
    print(json.dumps(proxy.counters()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
