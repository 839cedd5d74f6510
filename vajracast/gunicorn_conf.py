"""gunicorn hooks that keep the request metrics right across several web processes.

Used as ``gunicorn --config python:vajracast.gunicorn_conf``. They only act when
PROMETHEUS_MULTIPROC_DIR is set: each web process then writes its request metrics to files in
that directory, and a scrape answered by any of them adds up all the files (``vajracast.metrics``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(directory: Path) -> None:
    """Create the directory and empty it of an earlier run's files. Counters left over from
    processes that no longer exist would otherwise be added to this run's figures for good."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def on_starting(server: Any) -> None:
    directory = os.environ.get(MULTIPROCESS_VARIABLE)
    if directory:
        prepare_multiprocess_dir(Path(directory))


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROCESS_VARIABLE):
        from prometheus_client import multiprocess

        # Live gauges of a process that is gone must stop counting; its counters stay in the sums.
        multiprocess.mark_process_dead(worker.pid)
