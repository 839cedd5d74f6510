"""The operator's pages: login, the routes list, a route's detail, start and stop by role."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pytest_django.fixtures import Settings

from routes.choices import EventKind, Role
from routes.models import Input, Output, Route, RouteEvent
from routes.roles import grant_role
from routes.runtime import RouteRuntime, publish_route_state

PASSWORD = "correct horse battery staple"


@pytest.fixture
def login_as(db: None, django_user_model: type[AbstractUser]) -> Callable[[Role | None], Client]:
    def make(role: Role | None) -> Client:
        user = django_user_model.objects.create_user(username=f"user-{role}", password=PASSWORD)
        if role is not None:
            grant_role(user, role)
        client = Client()
        response = client.post("/login/", {"username": user.username, "password": PASSWORD})
        assert response.status_code == 302, "login failed"
        return client

    return make


@pytest.fixture
def news(route: Route) -> Route:
    Input.objects.create(route=route, name="backup", priority=2, protocol="srt", mode="caller", host="enc2", port=9000)
    Input.objects.create(
        route=route, name="main", priority=1, protocol="srt", mode="listener", port=9001, streamid="news/main",
        passphrase="secret-passphrase-1",
    )  # fmt: skip
    Output.objects.create(route=route, name="cdn", protocol="srt", mode="caller", host="cdn.example.net", port=7000)
    return route


def test_pages_need_login(db: None) -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_wrong_password_is_told(db: None, django_user_model: type[AbstractUser]) -> None:
    django_user_model.objects.create_user(username="ann", password=PASSWORD)
    response = Client().post("/login/", {"username": "ann", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_user_without_role_is_told_what_to_ask_for(login_as: Callable[[Role | None], Client]) -> None:
    response = login_as(None).get("/")
    assert response.status_code == 403


def test_list_shows_routes_with_desired_and_live_state(login_as: Callable[[Role | None], Client], news: Route) -> None:
    sports = Route.objects.create(name="sports", enabled=True)
    main = news.inputs.get(name="main")
    publish_route_state(news.pk, RouteRuntime(state="running", active_input=main.pk, listeners_bound=True))
    page = login_as(Role.VIEWER).get("/").content.decode()

    def row(route: Route) -> str:
        return page[page.index(f'data-route="{route.pk}"') :].split("</tr>")[0]

    assert "running" in row(news)
    assert "main (priority 1)" in row(news)
    assert "sports" in row(sports)
    assert "idle" in row(sports)


def test_detail_shows_inputs_by_priority_with_encoder_url_and_no_secret(
    login_as: Callable[[Role | None], Client], news: Route, settings: Settings
) -> None:
    settings.ALLOWED_HOSTS = ["testserver", "gw.example.net"]
    RouteEvent.objects.create(route=news, kind=EventKind.INPUT_DOWN, message="main: no data for 300 ms")
    page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/", HTTP_HOST="gw.example.net:8080").content.decode()
    assert page.index("main") < page.index("backup"), "inputs must be listed by priority"
    assert "srt://gw.example.net:9001?streamid=news%2Fmain" in page
    assert "encrypted" in page
    assert "secret-passphrase-1" not in page
    assert "cdn.example.net:7000" in page
    assert "main: no data for 300 ms" in page


def test_viewer_sees_no_buttons_and_cannot_start(login_as: Callable[[Role | None], Client], news: Route) -> None:
    client = login_as(Role.VIEWER)
    assert b">Start</button>" not in client.get(f"/routes/{news.pk}/").content
    assert client.post(f"/routes/{news.pk}/start/").status_code == 403
    news.refresh_from_db()
    assert news.enabled is False


def test_operator_starts_and_stops(login_as: Callable[[Role | None], Client], news: Route) -> None:
    client = login_as(Role.OPERATOR)
    response = client.post(f"/routes/{news.pk}/start/", follow=True)
    news.refresh_from_db()
    assert news.enabled is True
    page = response.content.decode()
    assert "set to run" in page
    assert "no worker node is online" in page, "the operator must see why it does not run"
    assert ">Stop</button>" in page
    client.post(f"/routes/{news.pk}/stop/")
    news.refresh_from_db()
    assert news.enabled is False


def test_unknown_action_and_get_are_refused(login_as: Callable[[Role | None], Client], news: Route) -> None:
    client = login_as(Role.ADMIN)
    assert client.post(f"/routes/{news.pk}/explode/").status_code == 403
    assert client.get(f"/routes/{news.pk}/start/").status_code == 405
    news.refresh_from_db()
    assert news.enabled is False
