"""A plain UDP receiver for tests: keeps every datagram as it arrived, with its sender and TTL.

Unlike a player it changes nothing, so what it keeps can be compared byte for byte with what the
relay says it sent. In a test::

    with UdpCapture(port) as capture:
        ...
    assert capture.bytes == output.stats.meter.bytes

From a shell (or inside a network namespace), joined to a group, printing one JSON summary when
it has the datagrams asked for, on Ctrl-C or SIGTERM, or at its timeout::

    python -m tests.peers.udp_probe --host 239.1.1.9 --port 5000 --interface 127.0.0.1 --count 100
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux; Python does not export it
_MAX_DATAGRAM = 65536
_BUFFER = 4 * 1024 * 1024


def udp_ports_bound() -> set[int]:
    """The local ports of this network namespace's UDP sockets."""
    return local_ports(Path("/proc/net/udp").read_text())


def local_ports(proc_net_udp: str) -> set[int]:
    """The local ports listed in the text of a /proc/net/udp table."""
    lines = proc_net_udp.splitlines()[1:]
    return {int(line.split()[1].rsplit(":", 1)[1], 16) for line in lines if line.strip()}


class UdpCapture:
    """Receives on ``host``:``port`` (a multicast group is joined, on ``interface`` if given) from
    a thread of its own until stopped."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, interface: str = "") -> None:
        self.port = port
        self.host = host
        self.interface = interface
        self.data = bytearray()
        self.datagrams = 0
        self.senders: dict[str, int] = {}
        self.ttls: set[int] = set()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        with self._lock:
            return len(self.data)

    def start(self) -> UdpCapture:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sock.bind((self.host, self.port))
        if ipaddress.ip_address(self.host).is_multicast:
            interface = socket.inet_aton(self.interface or "0.0.0.0")
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(self.host) + interface)
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name=f"udp capture {self.port}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sock is not None
        ancillary_size = socket.CMSG_SPACE(struct.calcsize("i"))
        while not self._stop.is_set():
            try:
                payload, ancillary, _flags, sender = self._sock.recvmsg(_MAX_DATAGRAM, ancillary_size)
            except TimeoutError:
                continue
            with self._lock:
                self.data += payload
                self.datagrams += 1
                self.senders[sender[0]] = self.senders.get(sender[0], 0) + 1
                for level, kind, value in ancillary:
                    if level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                        self.ttls.add(struct.unpack("i", value[: struct.calcsize("i")])[0])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def save(self, path: Path) -> Path:
        with self._lock:
            path.write_bytes(bytes(self.data))
        return path

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "datagrams": self.datagrams,
                "bytes": len(self.data),
                "senders": dict(self.senders),
                "ttls": sorted(self.ttls),
            }

    def __enter__(self) -> UdpCapture:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.peers.udp_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="local address or multicast group")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="", help="local IPv4 address to join the group on")
    parser.add_argument("--count", type=int, default=100, help="stop after this many datagrams (or Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=60.0, help="stop after this many seconds anyway")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with UdpCapture(args.port, args.host, interface=args.interface) as capture:
        print(json.dumps({"listening": args.port}), flush=True)
        deadline = time.monotonic() + args.timeout
        while capture.datagrams < args.count and time.monotonic() < deadline and not stop.wait(0.05):
            pass
    print(json.dumps(capture.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
