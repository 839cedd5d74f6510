"""The slate as an input kind: builds the clip at start and sends it, looped and paced, from a
thread of its own. How the slate is drawn, encoded and looped is in media_engine.slate; the
pacing is media_engine.remux's."""

from __future__ import annotations

import logging

import av

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Sink
from media_engine.inputs.produced import ProducedInput
from media_engine.remux import Pacer
from media_engine.slate.clip import encode_clip
from media_engine.slate.loop import LoopMuxer
from media_engine.slate.settings import SlateSettings

log = logging.getLogger(__name__)


class SlateInput(ProducedInput):
    """Bars and tone as an input of the route's lowest priority. Options (all optional): width and
    height (1280x720), fps (25), tone_hz (1000; 0 for silence) and text to show over the bars."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.settings = SlateSettings.from_options(config.options)

    def start(self, sink: Sink) -> None:
        clip = encode_clip(self.settings)
        pacer = Pacer()
        try:
            muxer = LoopMuxer(clip, self.config.name, pacer)
        except av.FFmpegError as exc:
            raise ValueError(f"cannot build the slate: the MPEG-TS muxer failed: {exc}") from exc
        self._play(sink, muxer, pacer, None)
