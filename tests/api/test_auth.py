"""Bearer API keys and browser sessions: who is let in, and what a refused caller is told."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from routes.choices import Role
from routes.models import ApiKey, Route
from routes.models.apikey import hash_key
from routes.roles import grant_role


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def issued(db: None, django_user_model: type[AbstractUser]) -> tuple[ApiKey, str]:
    user = django_user_model.objects.create_user(username="automation")
    return ApiKey.issue(user, Role.OPERATOR, name="playout")


@pytest.fixture
def session_for(db: None, django_user_model: type[AbstractUser]) -> Callable[[Role | None], APIClient]:
    """A client logged in as a person whose role is their group (None: no group)."""

    def make(role: Role | None) -> APIClient:
        user = django_user_model.objects.create_user(username=f"person-{role.value if role else 'none'}")
        if role is not None:
            grant_role(user, role)
        client = APIClient()
        client.force_login(user)
        return client

    return make


def test_no_credentials_is_401_with_a_challenge(db: None) -> None:
    response = APIClient().get("/api/v1/routes/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {"message": "Authentication credentials were not provided.", "errors": {}}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer vc_not-a-key-we-issued", id="unknown-key"),
        pytest.param("bearer vc_not-a-key-we-issued", id="lower-case-scheme"),
    ],
)
def test_unknown_key_is_401_saying_so(db: None, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/routes/")

    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert "not valid" in response.json()["message"]


def test_empty_bearer_is_401_saying_the_key_is_missing(db: None) -> None:
    response = _bearer("").get("/api/v1/routes/")

    assert response.status_code == 401
    assert "no key after 'Bearer'" in response.json()["message"]


def test_issued_key_works_and_records_its_use(issued: tuple[ApiKey, str]) -> None:
    key, plaintext = issued

    assert _bearer(plaintext).get("/api/v1/routes/").status_code == 200

    key.refresh_from_db()
    assert key.last_used is not None


def test_revoked_key_is_refused(issued: tuple[ApiKey, str]) -> None:
    key, plaintext = issued
    key.revoked_at = timezone.now()
    key.save()

    response = _bearer(plaintext).get("/api/v1/routes/")

    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_key_of_a_disabled_user_is_refused(issued: tuple[ApiKey, str]) -> None:
    key, plaintext = issued
    key.user.is_active = False
    key.user.save()

    assert _bearer(plaintext).get("/api/v1/routes/").status_code == 401


def test_only_a_hash_of_the_key_is_stored(issued: tuple[ApiKey, str]) -> None:
    key, plaintext = issued
    secret_part = plaintext[len(key.prefix) :]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")  # noqa: S608 - table name from the model
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)

    assert plaintext not in stored
    assert secret_part not in stored
    assert hash_key(plaintext) in stored


@pytest.mark.parametrize(
    ("role", "method", "path", "needed"),
    [
        pytest.param(Role.VIEWER, "post", "/api/v1/routes/{id}/start/", "operator", id="viewer-starts"),
        pytest.param(Role.VIEWER, "post", "/api/v1/routes/{id}/switch/", "operator", id="viewer-switches"),
        pytest.param(Role.OPERATOR, "patch", "/api/v1/routes/{id}/", "admin", id="operator-edits"),
        pytest.param(Role.OPERATOR, "delete", "/api/v1/routes/{id}/", "admin", id="operator-deletes"),
    ],
)
def test_insufficient_role_is_403_naming_the_needed_role(
    api_client_for: Callable[[Role | None], APIClient], route: Route, role: Role, method: str, path: str, needed: str
) -> None:
    response = getattr(api_client_for(role), method)(path.format(id=route.pk), {"input": None}, format="json")

    assert response.status_code == 403
    assert response.json()["message"] == f"This needs the {needed} role; you have {role.value}."


def test_key_role_decides_not_the_users_group(django_user_model: type[AbstractUser], route: Route, db: None) -> None:
    user = django_user_model.objects.create_user(username="boss")
    grant_role(user, Role.ADMIN)
    _key, plaintext = ApiKey.issue(user, Role.VIEWER)

    response = _bearer(plaintext).post(f"/api/v1/routes/{route.pk}/start/")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("role", "read", "start", "delete"),
    [
        pytest.param(Role.VIEWER, 200, 403, 403, id="viewer"),
        pytest.param(Role.OPERATOR, 200, 200, 403, id="operator"),
        pytest.param(Role.ADMIN, 200, 200, 204, id="admin"),
    ],
)
def test_session_login_gets_the_role_of_the_persons_group(
    session_for: Callable[[Role | None], APIClient], route: Route, role: Role, read: int, start: int, delete: int
) -> None:
    client = session_for(role)

    assert client.get(f"/api/v1/routes/{route.pk}/").status_code == read
    assert client.post(f"/api/v1/routes/{route.pk}/start/").status_code == start
    assert client.delete(f"/api/v1/routes/{route.pk}/").status_code == delete


def test_session_without_a_role_is_told_which_it_needs(
    session_for: Callable[[Role | None], APIClient], route: Route
) -> None:
    response = session_for(None).get("/api/v1/routes/")

    assert response.status_code == 403
    assert response.json()["message"] == "This needs the viewer role; you have no role."


def test_superuser_session_is_admin(django_user_model: type[AbstractUser], route: Route) -> None:
    client = APIClient()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "unused"))

    assert client.delete(f"/api/v1/routes/{route.pk}/").status_code == 204


def test_session_writes_need_the_csrf_token(django_user_model: type[AbstractUser], route: Route) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "unused"))

    response = client.post(f"/api/v1/routes/{route.pk}/start/")

    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]
    route.refresh_from_db()
    assert route.enabled is False
