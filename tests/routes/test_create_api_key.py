"""``manage.py create_api_key``: makes the user if needed and prints a key that works with its role."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from routes.choices import Role
from routes.models import ApiKey, Route
from routes.roles import role_of_user


def _create_key(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.parametrize(
    ("role", "read", "start", "create"),
    [
        pytest.param("viewer", 200, 403, 403, id="viewer"),
        pytest.param("operator", 200, 200, 403, id="operator"),
        pytest.param("admin", 200, 200, 201, id="admin"),
    ],
)
def test_printed_key_works_with_its_role(
    route: Route, django_user_model: type[AbstractUser], role: str, read: int, start: int, create: int
) -> None:
    out, err = _create_key("--user", "playout", "--role", role)

    key = out.strip()
    assert out == key + "\n", "stdout holds the key alone, so scripts can capture it"
    assert "not shown again" in err
    user = django_user_model.objects.get(username="playout")
    assert not user.has_usable_password()
    assert role_of_user(user) == Role(role)
    client = _client(key)
    assert client.get("/api/v1/routes/").status_code == read
    assert client.post(f"/api/v1/routes/{route.pk}/start/").status_code == start
    assert client.post("/api/v1/routes/", {"name": "sport"}, format="json").status_code == create


def test_existing_user_gets_another_key_and_keeps_the_first(
    route: Route, django_user_model: type[AbstractUser]
) -> None:
    first, _ = _create_key("--user", "playout", "--role", "operator", "--name", "studio A")
    second, _ = _create_key("--user", "playout", "--role", "viewer")

    assert django_user_model.objects.filter(username="playout").count() == 1
    assert first != second
    assert _client(first.strip()).post(f"/api/v1/routes/{route.pk}/start/").status_code == 200
    assert _client(second.strip()).post(f"/api/v1/routes/{route.pk}/start/").status_code == 403
    assert set(ApiKey.objects.values_list("name", flat=True)) == {"studio A", ""}


def test_printed_key_is_not_stored(db: None) -> None:
    out, _ = _create_key("--user", "playout", "--role", "admin")

    key = ApiKey.objects.get()
    assert out.strip() not in {key.key_hash, key.prefix, key.name}
    assert out.strip().startswith(key.prefix)


@pytest.mark.parametrize("role", ["superuser", "Admin", ""])
def test_unknown_role_is_refused_and_creates_nothing(
    db: None, django_user_model: type[AbstractUser], role: str
) -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        _create_key("--user", "playout", "--role", role)

    assert not django_user_model.objects.filter(username="playout").exists()
    assert not ApiKey.objects.exists()
