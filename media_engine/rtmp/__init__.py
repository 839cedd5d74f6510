"""RTMP ingest: a server on one TCP port shared by many inputs, the protocol as publishers speak
it (handshake, chunk stream, AMF0 commands), and their FLV remuxed to MPEG-TS. And RTMP push: the
client side of the same protocol, publishing the relay's MPEG-TS remuxed to FLV.

Written here rather than built on pyrtmp (PyPI 0.3.1, which we evaluated): pyrtmp is an asyncio
server, its sessions coroutines on an event loop, while the engine runs each endpoint in threads
with blocking sockets and joins them on stop. Using it would mean an event loop thread per
process and queues between it and the inputs, for the part of RTMP a publish-only gateway needs,
which is small. pyrtmp is also the work of one maintainer with few releases, and we would still
need the FLV to MPEG-TS remux around it. The protocol follows Adobe's RTMP specification and what
FFmpeg and OBS send; no code is taken from other projects.

Modules: ``server`` (the shared port, registrations, refusals), ``connection`` (one encoder's
connection and its commands), ``remux`` (FLV to MPEG-TS); ``client`` (a publishing connection to
another server), ``ts_to_flv`` (MPEG-TS to the FLV tags it publishes); and for both sides
``handshake``, ``chunks`` (chunk stream reassembly), ``socket_source`` (buffered reads from the
socket), ``amf`` (AMF0 values), ``messages`` (types and replies) and ``flv`` (tags).
"""
