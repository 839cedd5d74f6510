"""Input kinds by protocol and mode. A new protocol is a new module and one line here."""

from __future__ import annotations

from collections.abc import Callable

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input
from media_engine.inputs.srt import SrtDialInput, SrtListenerInput

_KINDS: dict[tuple[str, str | None], Callable[[EndpointConfig], Input]] = {
    ("srt", "listener"): SrtListenerInput,
    ("srt", "caller"): SrtDialInput,
    ("srt", "rendezvous"): SrtDialInput,
}


def build_input(config: EndpointConfig) -> Input:
    mode = config.srt.mode if config.srt else None
    kind = _KINDS.get((config.protocol, mode))
    if kind is None:
        raise ValueError(f"input {config.name!r}: {config.protocol} {mode or ''} inputs are not supported yet")
    return kind(config)
