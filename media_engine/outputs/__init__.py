"""Output kinds by protocol and mode. A new protocol is a new module and one line here."""

from __future__ import annotations

from collections.abc import Callable

from media_engine.config import EndpointConfig
from media_engine.outputs.base import Output
from media_engine.outputs.srt import SrtDialOutput, SrtListenerOutput

_KINDS: dict[tuple[str, str | None], Callable[[EndpointConfig], Output]] = {
    ("srt", "listener"): SrtListenerOutput,
    ("srt", "caller"): SrtDialOutput,
    ("srt", "rendezvous"): SrtDialOutput,
}


def build_output(config: EndpointConfig) -> Output:
    mode = config.srt.mode if config.srt else None
    kind = _KINDS.get((config.protocol, mode))
    if kind is None:
        raise ValueError(f"output {config.name!r}: {config.protocol} {mode or ''} outputs are not supported yet")
    return kind(config)
