"""The Celery app. Configuration comes from Django settings under the CELERY_ namespace."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vajracast.settings")

app = Celery("vajracast")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.celeryd_after_setup.connect
def _consume_node_queue(sender: str, instance: Any, **kwargs: Any) -> None:
    """Each worker also consumes a queue of its own: routes placed on its node are sent there."""
    from routes.worker import node_name

    instance.app.amqp.queues.select_add(f"node.{node_name()}")


@signals.worker_ready.connect
def _start_node(**kwargs: Any) -> None:
    # Schema first, then the node, then the routes: readiness turns green only after this.
    from routes import dispatch, worker

    worker.check_schema()
    worker.register()
    worker.start_heartbeat()
    dispatch.reconcile()


@signals.worker_shutting_down.connect
def _drain(**kwargs: Any) -> None:
    from routes import worker

    worker.drain()
