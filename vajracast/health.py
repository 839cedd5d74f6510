"""Liveness and readiness, as the deployment documentation promises them.

- ``/api/health``: the process runs and the database answers.
- ``/api/ready``: migrations are applied, the broker answers, and every enabled route has been
  taken up by a worker with its listeners bound.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from vajracast.broker import broker_problem

_migrations_done = False


def _database_problem() -> str | None:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - liveness reports any failure in words
        connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
        return f"{type(exc).__name__}: {str(exc).strip()}"
    return None


def _migrations_problem() -> str | None:
    global _migrations_done
    if _migrations_done:
        # Applied migrations do not un-apply under a running process; skip reading the graph again.
        return None
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"{len(plan)} migration(s) not applied; run: manage.py migrate"
    _migrations_done = True
    return None


def _routes_problem() -> str | None:
    from routes.models import Route
    from routes.runtime import route_states

    enabled = dict(Route.objects.filter(enabled=True).values_list("id", "name"))
    if not enabled:
        return None
    waiting = [enabled[rid] for rid, state in route_states(list(enabled)).items() if not state.taken_up]
    if waiting:
        return f"{len(waiting)} enabled route(s) not yet running: {', '.join(sorted(waiting)[:10])}"
    return None


def _respond(checks: dict[str, str | None]) -> JsonResponse:
    ok = all(problem is None for problem in checks.values())
    body = {
        "status": "ok" if ok else "fail",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return _respond({"database": _database_problem()})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str | None] = {"database": _database_problem()}
    if checks["database"] is None:
        checks["migrations"] = _migrations_problem()
    checks["broker"] = broker_problem(settings.HEALTH_CHECK_TIMEOUT_S)
    if checks["database"] is None and checks["migrations"] is None:
        checks["routes"] = _routes_problem()
    return _respond(checks)
