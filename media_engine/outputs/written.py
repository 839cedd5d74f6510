"""Outputs that write files: the relay only ever queues, a BackgroundWriter does the disk work."""

from __future__ import annotations

import ctypes

from media_engine.outputs.base import Output
from media_engine.segmenter import BackgroundWriter


class WrittenOutput(Output):
    _writer: BackgroundWriter

    def start(self) -> None:
        self._writer.start()

    def offer(self, data: ctypes.Array | bytes, length: int) -> None:
        self._writer.offer(data, length)

    def stop(self) -> None:
        self._writer.stop()
