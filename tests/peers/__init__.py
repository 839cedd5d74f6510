"""Stand-in peers and network conditions for tests that exercise the media engine over real sockets."""
