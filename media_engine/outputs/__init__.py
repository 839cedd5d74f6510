"""Output kinds by protocol and mode. A new protocol is a new module and one row here."""

from __future__ import annotations

from media_engine.config import EndpointConfig
from media_engine.kinds import Kinds
from media_engine.outputs.base import Output
from media_engine.outputs.srt import SrtDialOutput, SrtListenerOutput

KINDS: Kinds[Output] = Kinds(
    "output",
    {
        ("srt", "listener"): SrtListenerOutput,
        ("srt", "caller"): SrtDialOutput,
        ("srt", "rendezvous"): SrtDialOutput,
    },
)


def build_output(config: EndpointConfig) -> Output:
    return KINDS.build(config)
