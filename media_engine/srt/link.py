"""Dialling an SRT peer (caller or rendezvous) and describing a connected socket."""

from __future__ import annotations

import threading
from typing import Any

from media_engine.config import SrtSettings
from media_engine.srt.configure import apply_settings
from media_engine.srt.errors import SrtError
from media_engine.srt.socket import SrtSocket


def dial(settings: SrtSettings, *, sender: bool, stop: threading.Event | None = None) -> SrtSocket:
    """Connect to the peer, waiting up to the connect timeout; setting ``stop`` aborts at once."""
    sock = SrtSocket()
    try:
        apply_settings(sock, settings, sender=sender)
        if settings.mode == "rendezvous":
            local_port = settings.local_port or settings.port
            sock.rendezvous("0.0.0.0", local_port, settings.host, settings.port, stop)
        else:
            sock.connect(settings.host, settings.port, stop)
    except SrtError:
        sock.close()
        raise
    return sock


def link_snapshot(sock: SrtSocket | None) -> dict[str, Any]:
    if sock is None or sock.closed:
        return {}
    try:
        return {"srt": sock.stats()}
    except SrtError:
        return {}
