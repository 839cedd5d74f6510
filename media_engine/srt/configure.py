"""Applying an endpoint's settings to a libsrt socket, the same way for every SRT input and output."""

from __future__ import annotations

from media_engine.config import SrtSettings
from media_engine.srt.socket import LIVE_PAYLOAD, Opt, SrtSocket


def apply_settings(sock: SrtSocket, settings: SrtSettings, *, sender: bool) -> None:
    """Options that must be set before connecting. ``sender`` sockets never block on send."""
    sock.set(Opt.PAYLOADSIZE, LIVE_PAYLOAD)
    sock.set(Opt.RCVLATENCY, settings.latency_ms)
    sock.set(Opt.PEERLATENCY, settings.peer_latency_ms or settings.latency_ms)
    sock.set(Opt.CONNTIMEO, settings.connect_timeout_ms)
    sock.set(Opt.PEERIDLETIMEO, settings.peer_idle_timeout_ms)
    if settings.passphrase:
        sock.set(Opt.PASSPHRASE, settings.passphrase)
        sock.set(Opt.PBKEYLEN, settings.pbkeylen)
    if settings.streamid and settings.mode != "listener":
        sock.set(Opt.STREAMID, settings.streamid)
    if settings.maxbw_bytes is not None:
        sock.set(Opt.MAXBW, settings.maxbw_bytes)
        if settings.maxbw_bytes == 0:
            sock.set(Opt.OHEADBW, settings.overhead_percent)
    if settings.send_buffer_bytes:
        sock.set(Opt.SNDBUF, settings.send_buffer_bytes)
    if settings.recv_buffer_bytes:
        sock.set(Opt.RCVBUF, settings.recv_buffer_bytes)
    if settings.mode == "rendezvous":
        sock.set(Opt.RENDEZVOUS, True)
    if sender:
        # A slow or dead peer must not stall the input thread that feeds every output: a full send
        # buffer makes sendmsg fail at once, and the message is counted as dropped for that output.
        sock.set(Opt.SNDSYN, False)


def apply_accepted(sock: SrtSocket, *, sender: bool) -> None:
    if sender:
        sock.set(Opt.SNDSYN, False)
