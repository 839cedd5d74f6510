"""Re-encoding an output: decode the active input, scale, encode, mux MPEG-TS.

- ``encoders``: which video encoders this node can run, and which one a rendition gets;
- ``pipeline``: the ``Transcoder`` itself (demux, timeline, decode once, every rendition);
- ``rendition``: one rendition's scaling, constant frame rate, encoding and muxing;
- ``framerate``: mapping pictures onto a constant frame rate; ``audio``: AAC on the same timeline;
- ``stats``: what a transcoder reports; ``feed``: the queue between the relay and a transcoder;
- ``output``: ``TranscodingOutput``, wrapping any protocol's output; ``ladder``: HLS ABR ladders.
"""
