"""An input whose messages the test hands over one call at a time, so each step of a switch
happens in a known order. The bytes are a real encoder's, recorded."""

from __future__ import annotations

from media_engine.config import EndpointConfig, HealthSettings
from media_engine.inputs.base import Input, Sink


class Replay(Input):
    def __init__(self, name: str, health: HealthSettings | None = None) -> None:
        super().__init__(EndpointConfig(id=name, name=name, protocol="replay", health=health or HealthSettings()))

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self.stats.state = "connected"

    def stop(self) -> None:
        self.stats.state = "stopped"

    def send(self, message: bytes) -> None:
        self.deliver(message, len(message))
