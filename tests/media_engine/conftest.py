from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig, RelayConfig, SrtSettings
from media_engine.relay import Relay
from tests.peers.media import make_ts
from tests.support.processes import RunningProcess, stop_process_tree


@pytest.fixture(scope="session")
def sample_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ts(tmp_path_factory.mktemp("media") / "sample.ts", seconds=8)


@pytest.fixture
def processes() -> Iterator[list[RunningProcess]]:
    """Append every peer process a test starts; each is stopped by PID when the test ends."""
    started: list[RunningProcess] = []
    yield started
    for process in started:
        stop_process_tree(process)


@pytest.fixture
def relays() -> Iterator[Callable[..., Relay]]:
    """Start in-process relays; each is stopped when the test ends."""
    running: list[Relay] = []

    def start(source: EndpointConfig, *targets: EndpointConfig, name: str = "test") -> Relay:
        relay = Relay(RelayConfig(name=name, input=source, outputs=targets))
        relay.start()
        running.append(relay)
        return relay

    yield start
    for relay in running:
        relay.stop()


def srt_endpoint(name: str, **settings: object) -> EndpointConfig:
    return EndpointConfig(id=name, name=name, protocol="srt", srt=SrtSettings(**settings))  # type: ignore[arg-type]
