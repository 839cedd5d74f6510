"""``/metrics``: request metrics of the web processes plus the gateway's own, for Prometheus.

The web server runs several processes and a scrape reaches any one of them. Request metrics
(django-prometheus) are kept per process; with PROMETHEUS_MULTIPROC_DIR set every process writes
them to files there and any process sums them all up on a scrape. The gateway's metrics are read
from the shared live state at scrape time (``routes.metrics``), so they need no such care.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from routes.metrics import GatewayCollector

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class Exposition(Collector):
    """What one scrape returns: the request metrics of every web process, then the gateway's."""

    def __init__(self) -> None:
        if os.environ.get(MULTIPROCESS_VARIABLE):
            # A fresh registry each time: the collector reads the files as they are now.
            self.requests: Collector = CollectorRegistry()
            MultiProcessCollector(self.requests)
        else:
            self.requests = REGISTRY
        self.gateway = GatewayCollector()

    def collect(self) -> Iterator[Metric]:
        yield from self.requests.collect()
        yield from self.gateway.collect()


def _refusal(status: int, error: str) -> HttpResponse:
    response = HttpResponse(f"{error}\n", status=status, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = f'Bearer realm="metrics", error="{error}"'
    return response


def _authorization_problem(request: HttpRequest, token: str) -> HttpResponse | None:
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        return _refusal(401, "invalid_request")
    # Constant time: the comparison must not tell a caller how much of a guess was right.
    if not hmac.compare_digest(offered.strip().encode(), token.encode()):
        return _refusal(403, "invalid_token")
    return None


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token: str | None = settings.VAJRACAST_METRICS_TOKEN
    if token is not None and (refused := _authorization_problem(request, token)) is not None:
        return refused
    return HttpResponse(generate_latest(Exposition()), content_type=CONTENT_TYPE_LATEST)
