"""A throwaway network namespace: multicast without touching the host's own network.

The namespace has only its loopback interface, up, with multicast on and the multicast range
(224.0.0.0/4) routed through it, so senders, the relay and receivers inside it exchange
multicast as on a LAN while nothing leaks to the host. Every 127.0.0.0/8 address is local, so
two senders can have distinct source addresses (127.0.0.1 and 127.0.0.2) for source-specific
multicast.

    with NetworkNamespace() as ns:
        process = ns.start(["ffmpeg", ...], name="sender")
        ...

Needs root (or CAP_SYS_ADMIN) for ``ip netns``. The name is unique per test run and the namespace
is deleted by name on exit, even when the test fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Sequence
from types import TracebackType

from tests.peers.udp_probe import local_ports
from tests.support.processes import RunningProcess, environment, start_process

MULTICAST_RANGE = "224.0.0.0/4"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


class NetworkNamespace:
    def __init__(self, prefix: str = "vctest") -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.created = False

    def create(self) -> NetworkNamespace:
        self._ip_or_fail("netns", "add", self.name)
        self.created = True
        try:
            self._ip_or_fail("-n", self.name, "link", "set", "lo", "up", "multicast", "on")
            self._ip_or_fail("-n", self.name, "route", "add", MULTICAST_RANGE, "dev", "lo")
        except AssertionError:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Remove the namespace by name. Processes still inside keep it alive until they exit, so
        stop them first."""
        if self.created:
            _ip("netns", "delete", self.name)
            self.created = False

    def exists(self) -> bool:
        return self.name in _ip("netns", "list").stdout.split()

    def argv(self, argv: Sequence[str]) -> list[str]:
        """A command line that runs ``argv`` inside the namespace (``ip netns exec`` execs it, so
        the started PID is the command's own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def start(self, argv: Sequence[str], *, name: str) -> RunningProcess:
        return start_process(self.argv(argv), env=environment(), name=f"{name} (in {self.name})")

    def run(self, argv: Sequence[str], timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout_s, check=False)

    def udp_ports_bound(self) -> set[int]:
        """The local ports of the namespace's UDP sockets (its /proc/net/udp)."""
        return local_ports(self.run(["cat", "/proc/net/udp"]).stdout)

    def _ip_or_fail(self, *args: str) -> None:
        result = _ip(*args)
        if result.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")

    def __enter__(self) -> NetworkNamespace:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.delete()
