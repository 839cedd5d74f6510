"""Celery entry points. Messages carry only JSON (a route id); everything else comes from the database."""

from __future__ import annotations

import logging

from celery import shared_task

from routes import dispatch, webhooks, worker
from routes.runner import RouteRunner

log = logging.getLogger(__name__)


@shared_task(name="routes.run_route", ignore_result=True, acks_late=False)
def run_route(route_id: int) -> str:
    """Run one route for as long as it should run on this node (hours, days).

    The message is acknowledged on receipt (acks_late=False): with the Redis broker an unacknowledged
    message is delivered again after the visibility timeout, which would start a second copy. A
    lost task is instead re-sent by ``reconcile`` once the route's lease has expired.
    """
    why = worker.run_pipeline(RouteRunner(route_id, worker.node_name(), worker.draining))
    log.info("route %s ended: %s", route_id, why)
    return why


@shared_task(name="routes.reconcile", ignore_result=True)
def reconcile() -> int:
    return dispatch.reconcile()


@shared_task(name="routes.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt of one webhook delivery. Not retried by Celery: a failed attempt sets the
    delivery's next attempt, and ``sweep_webhooks`` sends it again when that is due."""
    return webhooks.attempt(delivery_id)


@shared_task(name="routes.sweep_webhooks", ignore_result=True)
def sweep_webhooks() -> int:
    return webhooks.sweep()
