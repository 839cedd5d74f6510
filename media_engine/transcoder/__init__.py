"""Re-encoding an output: decode the active input, scale, encode, mux MPEG-TS."""
