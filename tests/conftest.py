"""Shared fixtures. Tests run against the real Postgres and Redis named by DATABASE_URL and REDIS_URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.db.models import Max
from rest_framework.test import APIClient

from routes.choices import InputProtocol, OutputProtocol, Role
from routes.models import ApiKey, Input, Output, Route


@pytest.fixture(autouse=True)
def _clean_runtime_store() -> Iterator[None]:
    caches["runtime"].clear()
    yield
    caches["runtime"].clear()


@pytest.fixture
def api_client_for(db: None, django_user_model: type) -> Callable[[Role | None], APIClient]:
    """An API client holding a fresh key of the given role (None: no credentials)."""

    def make(role: Role | None) -> APIClient:
        client = APIClient()
        if role is not None:
            user = django_user_model.objects.create_user(username=f"{role.value}-{ApiKey.objects.count()}")
            _key, plaintext = ApiKey.issue(user, role)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make


@pytest.fixture
def admin_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.ADMIN)


@pytest.fixture
def route(db: None) -> Route:
    return Route.objects.create(name="news")


@pytest.fixture
def make_input(route: Route) -> Callable[..., Input]:
    """Save a valid input (default: an SRT listener of ``route``, after its last input)."""

    def make(**fields: Any) -> Input:
        target: Route = fields.setdefault("route", route)
        last = target.inputs.aggregate(last=Max("priority"))["last"] or 0
        fields.setdefault("priority", last + 1)
        fields.setdefault("name", f"input-{fields['priority']}")
        fields.setdefault("protocol", InputProtocol.SRT)
        item = Input(**fields)
        item.full_clean()
        item.save()
        return item

    return make


@pytest.fixture
def make_output(route: Route) -> Callable[..., Output]:
    """Save a valid output (default: UDP to a unicast address of ``route``)."""

    def make(**fields: Any) -> Output:
        fields.setdefault("route", route)
        fields.setdefault("name", f"output-{Output.objects.count() + 1}")
        fields.setdefault("protocol", OutputProtocol.UDP)
        if fields["protocol"] == OutputProtocol.UDP:
            fields.setdefault("host", "198.51.100.10")
            fields.setdefault("port", 5000)
        item = Output(**fields)
        item.full_clean()
        item.save()
        return item

    return make
