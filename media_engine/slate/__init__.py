"""A slate: colour bars and a tone that stand in for a route's inputs when all of them are down.

It runs all the time on every route that has one, so it must cost next to nothing. A clip of one
second (one closed GOP and a whole number of tone cycles) is encoded once at start; from then on
its packets are muxed again and again into a live MPEG-TS with ever-growing timestamps, never
encoded again. The stream is paced by its own PCRs, as an encoder's output would be.

The input kind that runs it is media_engine.inputs.slate; the parts it is made of live here, but
for the MPEG-TS muxer's settings and the pacing, shared with other inputs in media_engine.remux.
"""
