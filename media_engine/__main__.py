"""Run one relay from the command line, without a database:

    python -m media_engine relay --input 'srt://:9000?streamid=cam1' --input 'srt://:9000?streamid=cam1b' \\
        --output 'srt://10.0.0.5:9100' --output 'srt://:9200?mode=listener&streamid=play'

    python -m media_engine relay --input 'udp://239.1.1.1:5000?interface=10.0.0.2' \\
        --output 'udp://239.2.2.2:5000?ttl=4&interface=10.0.1.2'

Inputs are in priority order: the first is the main one, the next its backups.

Stats are printed as one JSON line per interval. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import replace

from media_engine.config import EndpointConfig, FailoverSettings, HealthSettings, RelayConfig
from media_engine.relay import Relay
from media_engine.srt.errors import SrtError, SrtLibraryError
from media_engine.urls import endpoint_from_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media_engine", description="Vajra Cast media engine")
    commands = parser.add_subparsers(dest="command", required=True)
    relay = commands.add_parser("relay", help="relay SRT or UDP inputs (main, then backups) to SRT or UDP outputs")
    relay.add_argument(
        "--input", action="append", required=True, help="srt:// (no host: listener) or udp:// URL, repeatable"
    )
    relay.add_argument("--output", action="append", required=True, help="srt:// or udp:// URL, repeatable")
    relay.add_argument("--failback", action="store_true", help="return to a preferred input after the hold-off")
    relay.add_argument("--holdoff", type=float, default=10.0, help="failback hold-off in seconds")
    relay.add_argument("--timeout-ms", type=int, default=300, help="an input silent this long is down")
    relay.add_argument("--slate", action="store_true", help="send a test pattern with tone when every input is down")
    relay.add_argument("--stats-interval", type=float, default=1.0, help="seconds between stats lines (0: none)")
    relay.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    try:
        health = HealthSettings(timeout_ms=args.timeout_ms)
        config = RelayConfig(
            name="cli",
            inputs=tuple(
                replace(endpoint_from_url(url, name=f"input{index}", default_mode="listener"), health=health)
                for index, url in enumerate(args.input, 1)
            ),
            outputs=tuple(
                endpoint_from_url(url, name=f"output{index}", default_mode="caller")
                for index, url in enumerate(args.output, 1)
            ),
            failover=FailoverSettings(failback=args.failback, holdoff_s=args.holdoff),
            slate=EndpointConfig(id="slate", name="slate", protocol="slate") if args.slate else None,
        )
        engine = Relay(config)
        engine.start()
    except (ValueError, OSError, SrtError, SrtLibraryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(args.stats_interval or 3600):
            if args.stats_interval:
                print(json.dumps(engine.snapshot()), flush=True)
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
