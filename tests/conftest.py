"""Shared fixtures. Tests run against the real Postgres and Redis named by DATABASE_URL and REDIS_URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from routes.choices import Role
from routes.models import ApiKey, Route


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
