"""One input fanned out to many outputs, at MPEG-TS packet level, in the input's own thread.

Every output's ``offer`` returns at once, so the input thread hands each message to all outputs
without copying it and without waiting for any of them.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from media_engine.config import RelayConfig
from media_engine.inputs import build_input
from media_engine.inputs.base import Input
from media_engine.outputs import build_output
from media_engine.outputs.base import Output

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.input: Input = build_input(config.input)
        self.outputs: tuple[Output, ...] = tuple(build_output(output) for output in config.outputs)

    def _fan_out(self, data: ctypes.Array | bytes, length: int) -> None:
        for output in self.outputs:
            try:
                output.offer(data, length)
            except Exception:
                # A bug in one output must not stop the input feeding the others.
                output.stats.dropped_messages += 1
                log.exception("relay %s: output %s failed", self.config.name, output.config.name)

    def start(self) -> None:
        started: list[Output] = []
        try:
            for output in self.outputs:
                output.start()
                started.append(output)
            self.input.start(self._fan_out)
        except Exception:
            for output in started:
                output.stop()
            raise
        log.info("relay %s: %s -> %d output(s)", self.config.name, self.config.input.name, len(self.outputs))

    def stop(self) -> None:
        self.input.stop()
        for output in self.outputs:
            output.stop()

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "input": self.input.snapshot(),
            "outputs": [output.snapshot() for output in self.outputs],
        }
