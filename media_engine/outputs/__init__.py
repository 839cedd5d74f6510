"""Output kinds by protocol and mode. A new protocol is a new module and one row here.

An output with renditions is wrapped in a TranscodingOutput, which re-encodes the stream and
hands it to the output its protocol would have had anyway.
"""

from __future__ import annotations

from media_engine.config import EndpointConfig
from media_engine.kinds import Kinds
from media_engine.outputs.base import Output
from media_engine.outputs.hls import HlsOutput
from media_engine.outputs.recording import RecordingOutput
from media_engine.outputs.rtmp import RtmpOutput
from media_engine.outputs.srt import SrtDialOutput, SrtListenerOutput
from media_engine.outputs.udp import UdpOutput

KINDS: Kinds[Output] = Kinds(
    "output",
    {
        ("srt", "listener"): SrtListenerOutput,
        ("srt", "caller"): SrtDialOutput,
        ("srt", "rendezvous"): SrtDialOutput,
        ("udp", None): UdpOutput,
        ("hls", None): HlsOutput,
        ("file", None): RecordingOutput,
        ("rtmp", None): RtmpOutput,
    },
)


def build_output(config: EndpointConfig) -> Output:
    if config.transcode:
        # Imported here: the transcoding output is itself an Output, built on this package.
        from media_engine.transcoder.output import TranscodingOutput

        return TranscodingOutput(config, KINDS.build)
    return KINDS.build(config)
