"""The worker side of a node: register, heartbeat, run pipelines, drain on shutdown."""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from media_engine.transcoder.encoders import LABELS, available, node_probe
from routes.choices import NodeState
from routes.models import Node
from routes.placement import describe_encoders
from routes.runner import RouteRunner

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0

# Set when the worker shuts down: every pipeline stops and releases its lease, so a rolling
# restart moves routes at once instead of after a lease timeout.
draining = threading.Event()
_runners: set[RouteRunner] = set()
_runners_lock = threading.Lock()


def node_name() -> str:
    return settings.VAJRACAST_NODE_NAME or socket.gethostname()


def check_schema() -> None:
    """Refuse to run pipelines against a database whose migrations are not applied."""
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise SystemExit(f"{len(pending)} database migration(s) not applied; run: manage.py migrate")


def register() -> Node:
    # Probed once per process (the transcoders choose by the same result): a GPU added or lost
    # shows up when the worker restarts.
    found = node_probe()
    capabilities = available(found)
    problems = {kind: reason for kind, reason in found.items() if reason}
    node, _created = Node.objects.update_or_create(
        name=node_name(),
        defaults={
            "public_address": settings.VAJRACAST_PUBLIC_HOST or "",
            "port_min": settings.VAJRACAST_PORT_MIN,
            "port_max": settings.VAJRACAST_PORT_MAX,
            "max_routes": settings.VAJRACAST_MAX_ROUTES,
            "capabilities": capabilities,
            "encoder_problems": problems,
            "state": NodeState.ONLINE,
            "last_heartbeat": timezone.now(),
        },
    )
    log.info('node "%s" online (pid %s), queue %s', node.name, os.getpid(), node.queue)
    log.info('node "%s" encoders: %s', node.name, describe_encoders(capabilities))
    for kind, reason in problems.items():
        log.info('node "%s" cannot use the %s encoder: %s', node.name, LABELS.get(kind, kind), reason)
    return node


def heartbeat_once() -> None:
    Node.objects.filter(name=node_name()).update(last_heartbeat=timezone.now(), state=NodeState.ONLINE)


def _heartbeat_loop() -> None:
    while not draining.wait(HEARTBEAT_EVERY_S):
        try:
            heartbeat_once()
        except Exception:
            log.exception("heartbeat failed; will retry")
            close_old_connections()
    connection.close()


def start_heartbeat() -> threading.Thread:
    thread = threading.Thread(target=_heartbeat_loop, name="node-heartbeat", daemon=True)
    thread.start()
    return thread


def run_pipeline(runner: RouteRunner) -> str:
    with _runners_lock:
        _runners.add(runner)
    try:
        return runner.run()
    finally:
        with _runners_lock:
            _runners.discard(runner)


def drain() -> None:
    """Stop every pipeline and mark the node offline; called when the worker shuts down."""
    draining.set()
    try:
        Node.objects.filter(name=node_name()).update(state=NodeState.OFFLINE)
    except Exception:
        log.exception("could not mark the node offline")
    log.info("draining %d pipeline(s)", len(_runners))
