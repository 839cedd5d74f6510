"""The media engine: inputs, outputs, switcher, transcoder and stats. It never imports Django."""
