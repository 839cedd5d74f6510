"""A route's inputs, the switcher that picks one, and the outputs it is fanned out to.

The active input's thread hands each message to every output without copying it and without
waiting for any of them: every output's ``offer`` returns at once.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

from media_engine.config import RelayConfig
from media_engine.inputs import build_input
from media_engine.inputs.base import Input
from media_engine.outputs import build_output
from media_engine.outputs.base import Output
from media_engine.switcher import Switcher, SwitchEvent

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, config: RelayConfig, on_event: Callable[[SwitchEvent], None] | None = None) -> None:
        if not config.inputs:
            raise ValueError(f"relay {config.name!r} has no input")
        self.config = config
        sources = (*config.inputs, config.slate) if config.slate is not None else config.inputs
        self.inputs: tuple[Input, ...] = tuple(build_input(source) for source in sources)
        self.outputs: tuple[Output, ...] = tuple(build_output(output) for output in config.outputs)
        self.switcher = Switcher(
            config.name,
            self.inputs,
            config.failover,
            forward=self._fan_out,
            on_event=on_event,
            slate_index=len(config.inputs) if config.slate is not None else None,
        )

    @property
    def input(self) -> Input:
        """The main input (priority 1)."""
        return self.inputs[0]

    def _fan_out(self, data: ctypes.Array | bytes, length: int) -> None:
        for output in self.outputs:
            try:
                output.offer(data, length)
            except Exception:
                # A bug in one output must not stop the input feeding the others.
                output.stats.dropped_messages += 1
                log.exception("relay %s: output %s failed", self.config.name, output.config.name)

    def start(self) -> None:
        started: list[Output | Input] = []
        try:
            for output in self.outputs:
                output.start()
                started.append(output)
            for index, source in enumerate(self.inputs):
                source.start(self.switcher.sink(index))
                started.append(source)
        except Exception:
            for endpoint in reversed(started):
                endpoint.stop()
            raise
        self.switcher.start()
        names = ", ".join(source.config.name for source in self.inputs)
        log.info("relay %s: [%s] -> %d output(s)", self.config.name, names, len(self.outputs))

    def stop(self) -> None:
        self.switcher.stop()
        for source in self.inputs:
            source.stop()
        for output in self.outputs:
            output.stop()

    def pin(self, input_id: str | None) -> None:
        """Manual override: keep this input on air until released with None."""
        self.switcher.pin(input_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "inputs": [source.snapshot() for source in self.inputs],
            "outputs": [output.snapshot() for output in self.outputs],
            "switcher": self.switcher.snapshot(),
        }
