"""Turning a route's rows into the engine's plain configuration objects."""

from __future__ import annotations

from media_engine.config import EndpointConfig, RelayConfig, SrtSettings
from routes.models import Input, Output, Route


def endpoint_config(endpoint: Input | Output) -> EndpointConfig:
    srt = None
    if endpoint.is_srt:
        srt = SrtSettings(
            mode=endpoint.mode,  # type: ignore[arg-type]
            host=endpoint.host,
            port=endpoint.port or 0,
            streamid=endpoint.streamid,
            passphrase=endpoint.passphrase,
            pbkeylen=endpoint.pbkeylen,
            latency_ms=endpoint.latency_ms,
        )
    return EndpointConfig(id=str(endpoint.pk), name=endpoint.name, protocol=endpoint.protocol, srt=srt)


def active_input(route: Route) -> Input | None:
    """The input the pipeline relays: the operator's pin, else the preferred one.

    Health-driven switching between inputs is the switcher's job; until a route has one, the
    preferred input is the only one connected.
    """
    inputs = list(route.inputs.all())
    pinned = next((i for i in inputs if i.pk == route.pinned_input_id), None)
    return pinned or (inputs[0] if inputs else None)


def relay_config(route: Route) -> RelayConfig:
    chosen = active_input(route)
    if chosen is None:
        raise ValueError(f'route "{route.name}" has no input to relay')
    outputs = tuple(endpoint_config(o) for o in route.outputs.all() if o.enabled)
    return RelayConfig(name=route.name, input=endpoint_config(chosen), outputs=outputs)
