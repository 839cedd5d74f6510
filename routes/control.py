"""Operator actions on routes, shared by the API, the UI, the admin and the management commands."""

from __future__ import annotations

import logging

from routes.models import Route

log = logging.getLogger(__name__)


def start(route: Route) -> bool:
    """Set the route to run and send it to its node now; returns whether the desired state changed.

    The periodic reconcile would start it too; sending it here saves the operator up to its period.
    """
    changed = route.set_enabled(True)
    from routes.dispatch import dispatch

    try:
        dispatch(route)
    except Exception as exc:  # noqa: BLE001 - the desired state is saved; reconcile sends it later
        log.warning('route "%s": could not send it to a node now (%s); it starts when the broker answers', route, exc)
    return changed


def stop(route: Route) -> bool:
    """Set the route to stop; its pipeline notices within a fraction of a second."""
    return route.set_enabled(False)


def switch(route: Route, input_id: int | None) -> None:
    """Pin an input of the route (manual override), or release the pin with None."""
    route.pin_input(input_id)
