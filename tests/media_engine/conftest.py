from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_engine.config import EndpointConfig, FailoverSettings, RelayConfig, SrtSettings
from media_engine.relay import Relay
from media_engine.switcher import SwitchEvent
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

    def start(
        source: EndpointConfig | tuple[EndpointConfig, ...],
        *targets: EndpointConfig,
        name: str = "test",
        failover: FailoverSettings | None = None,
        slate: EndpointConfig | None = None,
        on_event: Callable[[SwitchEvent], None] | None = None,
    ) -> Relay:
        """``source``: one input, or inputs in priority order."""
        inputs = source if isinstance(source, tuple) else (source,)
        config = RelayConfig(name, inputs, targets, failover or FailoverSettings(), slate)
        relay = Relay(config, on_event=on_event)
        relay.start()
        running.append(relay)
        return relay

    yield start
    for relay in running:
        relay.stop()


def srt_endpoint(name: str, **settings: object) -> EndpointConfig:
    return EndpointConfig(id=name, name=name, protocol="srt", srt=SrtSettings(**settings))  # type: ignore[arg-type]
