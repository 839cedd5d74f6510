"""Fixtures for tests that run real workers, brokers and SRT peers against the test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import Settings
from django.db import connection
from rest_framework.test import APIClient

from routes.choices import Role
from tests.orchestration.cluster import Cluster
from tests.peers.media import make_ts
from tests.support.workers import PrivateRedis, celery_broker, database_url


@pytest.fixture(scope="session")
def stream_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight seconds of H.264 + AAC at about 1 Mbit/s; encoders loop it."""
    return make_ts(tmp_path_factory.mktemp("media") / "stream.ts", seconds=8)


@pytest.fixture
def cluster(transactional_db: None, settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """A private Redis (broker on db 0, runtime store on db 1) shared by this process and the workers.

    Workers and peers are stopped before the test database is flushed, and this process's API goes
    back to the configured broker and store afterwards.
    """
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    running = Cluster(tmp=tmp_path, redis=redis, database_url=database_url(connection.settings_dict))
    settings.CACHES = {
        **settings.CACHES,
        # The same store, with the same key prefix, as settings.py gives a worker with REDIS_URL set.
        "runtime": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis.url(1),
            "KEY_PREFIX": "vajracast",
        },
    }
    try:
        with celery_broker(redis.url(0)):
            yield running
    finally:
        running.stop()
        redis.stop()


@pytest.fixture
def operator_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.OPERATOR)
