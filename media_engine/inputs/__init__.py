"""Input kinds by protocol and mode. A new protocol is a new module and one row here."""

from __future__ import annotations

from media_engine.config import EndpointConfig
from media_engine.inputs.base import Input
from media_engine.inputs.file import FileInput
from media_engine.inputs.pull import HlsInput, HttpTsInput
from media_engine.inputs.rtmp import RtmpInput
from media_engine.inputs.slate import SlateInput
from media_engine.inputs.srt import SrtDialInput, SrtListenerInput
from media_engine.inputs.udp import UdpInput
from media_engine.kinds import Kinds

KINDS: Kinds[Input] = Kinds(
    "input",
    {
        ("srt", "listener"): SrtListenerInput,
        ("srt", "caller"): SrtDialInput,
        ("srt", "rendezvous"): SrtDialInput,
        ("slate", None): SlateInput,
        ("rtmp", None): RtmpInput,
        ("udp", None): UdpInput,
        ("http", None): HttpTsInput,
        ("hls", None): HlsInput,
        ("file", None): FileInput,
    },
)


def build_input(config: EndpointConfig) -> Input:
    return KINDS.build(config)
