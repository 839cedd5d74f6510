"""The operator's pages: login, the routes list, a route's detail, start and stop by role, and the
live parts the pages poll."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from routes.choices import EventKind, Role
from routes.models import Input, Output, Route, RouteEvent, TranscodeProfile
from routes.roles import grant_role
from routes.runtime import HISTORY_WINDOW_S, RouteRuntime, publish_route_history, publish_route_state

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


# failover: the state of each input, and an operator's manual switch


def _row(page: str, source: Input) -> str:
    return page[page.index(f'data-input="{source.pk}"') :].split("</tr>")[0]


def test_detail_shows_which_input_is_on_air_each_ones_health_and_the_last_switch(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    main, backup = news.inputs.get(name="main"), news.inputs.get(name="backup")
    news.slate = "pattern"
    news.save()
    reason = '"main" down: no data for 1006 ms (timeout 300 ms)'
    publish_route_state(
        news.pk,
        RouteRuntime(
            state="running",
            listeners_bound=True,
            active_input=backup.pk,
            active_priority=2,
            switches=2,
            last_switch={"from": str(main.pk), "to": str(backup.pk), "reason": reason, "planned": False, "at": 1.7e9},
            inputs={
                str(main.pk): {"state": "connected", "healthy": False, "health_reason": "no data for 1006 ms"},
                str(backup.pk): {"state": "connected", "healthy": True, "health_reason": ""},
            },
        ),
    )

    page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/").content.decode()

    assert "on air" in _row(page, backup)
    assert "on air" not in _row(page, main)
    assert "healthy" in _row(page, backup)
    assert "down" in _row(page, main)
    assert "no data for 1006 ms" in _row(page, main)
    assert "<strong data-switches>2</strong>" in page
    assert 'main → backup ("main" down: no data for 1006 ms (timeout 300 ms))' in html.unescape(page)
    assert "2023-11-14 22:13:20" in page, "when the last switch happened"
    assert "Slate: Test pattern with tone" in page
    assert "on slate" not in page


def test_detail_says_when_the_route_is_on_the_slate(login_as: Callable[[Role | None], Client], news: Route) -> None:
    main = news.inputs.get(name="main")
    last = {"from": str(main.pk), "to": "slate", "reason": "every input down", "planned": False, "at": 1.7e9}
    publish_route_state(
        news.pk,
        RouteRuntime(state="running", active_priority=3, on_slate=True, switches=1, last_switch=last),
    )

    page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/").content.decode()

    assert "on slate" in page
    assert "main → the slate (every input down)" in page
    assert "on air" not in page


def test_health_is_not_shown_while_no_worker_runs_the_route(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/").content.decode()

    main = news.inputs.get(name="main")
    assert "down" not in _row(page, main)
    assert "<strong data-switches>0</strong>" in page
    assert "Last switch" not in page


def test_switch_buttons_are_for_operators_only(login_as: Callable[[Role | None], Client], news: Route) -> None:
    news.pin_input(news.inputs.get(name="backup").pk)

    viewer_page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/").content.decode()
    operator_page = login_as(Role.OPERATOR).get(f"/routes/{news.pk}/").content.decode()

    assert "<strong>backup</strong> is pinned by operator" in viewer_page
    assert ">Switch to</button>" not in viewer_page
    assert ">Release</button>" not in viewer_page
    assert "<strong>backup</strong> is pinned by operator" in operator_page
    assert operator_page.count(">Switch to</button>") == 1, "the pinned input needs no button"
    assert ">Switch to</button>" in _row(operator_page, news.inputs.get(name="main"))
    assert ">Release</button>" in operator_page


def test_no_release_button_while_nothing_is_pinned(login_as: Callable[[Role | None], Client], news: Route) -> None:
    page = login_as(Role.OPERATOR).get(f"/routes/{news.pk}/").content.decode()

    assert page.count(">Switch to</button>") == 2
    assert ">Release</button>" not in page
    assert "pinned" not in page


def test_operator_pins_an_input_and_releases_it(login_as: Callable[[Role | None], Client], news: Route) -> None:
    client = login_as(Role.OPERATOR)
    backup = news.inputs.get(name="backup")
    news.refresh_from_db()
    version = news.config_version

    response = client.post(f"/routes/{news.pk}/switch/", {"input": backup.pk})

    assert response.status_code == 302
    assert response["Location"] == f"/routes/{news.pk}/"
    news.refresh_from_db()
    assert news.pinned_input_id == backup.pk
    assert news.config_version == version, "a switch is applied live, not by restarting the pipeline"
    page = html.unescape(client.get(response["Location"]).content.decode())
    assert 'Route "news": switching to "backup" once the route runs; it stays on air until released.' in page
    assert "pinned" in _row(page, backup)

    page = html.unescape(client.post(f"/routes/{news.pk}/switch/", {"input": ""}, follow=True).content.decode())

    news.refresh_from_db()
    assert news.pinned_input_id is None
    assert 'Route "news": pin released; the best healthy input goes on air automatically.' in page
    assert ">Release</button>" not in page


def test_switching_a_running_route_says_so(login_as: Callable[[Role | None], Client], news: Route) -> None:
    news.set_enabled(True)
    main = news.inputs.get(name="main")

    page = login_as(Role.OPERATOR).post(f"/routes/{news.pk}/switch/", {"input": main.pk}, follow=True)

    assert 'Route "news": switching to "main"; it stays on air until released.' in html.unescape(page.content.decode())


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        pytest.param("other-route", 'Not switched: Route "news" has no input with id', id="other-route"),
        pytest.param("999999", 'Not switched: Route "news" has no input with id 999999.', id="unknown"),
        pytest.param("main", "Not switched: A valid integer is required.", id="not-a-number"),
    ],
)
def test_switching_to_what_is_not_an_input_of_the_route_is_refused_with_a_message(
    login_as: Callable[[Role | None], Client], news: Route, posted: str, message: str
) -> None:
    backup = news.inputs.get(name="backup")
    news.pin_input(backup.pk)
    if posted == "other-route":
        sport = Route.objects.create(name="sport")
        posted = str(Input.objects.create(route=sport, name="cam", priority=1, protocol="srt", port=9100).pk)

    page = login_as(Role.OPERATOR).post(f"/routes/{news.pk}/switch/", {"input": posted}, follow=True)

    assert page.status_code == 200
    assert message in html.unescape(page.content.decode())
    news.refresh_from_db()
    assert news.pinned_input_id == backup.pk


@pytest.mark.parametrize("role", [Role.VIEWER, None])
def test_switching_needs_the_operator_role(
    login_as: Callable[[Role | None], Client], news: Route, role: Role | None
) -> None:
    main = news.inputs.get(name="main")

    response = login_as(role).post(f"/routes/{news.pk}/switch/", {"input": main.pk})

    assert response.status_code == 403
    news.refresh_from_db()
    assert news.pinned_input_id is None


def test_switch_is_post_only_and_needs_login(login_as: Callable[[Role | None], Client], news: Route) -> None:
    main = news.inputs.get(name="main")

    assert login_as(Role.ADMIN).get(f"/routes/{news.pk}/switch/").status_code == 405
    anonymous = Client().post(f"/routes/{news.pk}/switch/", {"input": main.pk})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")
    news.refresh_from_db()
    assert news.pinned_input_id is None


def test_switch_form_carries_the_csrf_token(db: None, django_user_model: type[AbstractUser], news: Route) -> None:
    user = django_user_model.objects.create_user(username="olga", password=PASSWORD)
    grant_role(user, Role.OPERATOR)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    backup = news.inputs.get(name="backup")
    switch = f"/routes/{news.pk}/switch/"

    assert client.post(switch, {"input": backup.pk}).status_code == 403, "a post without the token is refused"
    form = _row(client.get(f"/routes/{news.pk}/").content.decode(), backup)
    token = form.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    response = client.post(switch, {"input": backup.pk, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    news.refresh_from_db()
    assert news.pinned_input_id == backup.pk


def test_detail_shows_a_transcoding_outputs_encoder_and_figures(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    hd = TranscodeProfile.objects.create(name="hd", video_bitrate_kbps=3000)
    sd = TranscodeProfile.objects.create(name="sd", video_bitrate_kbps=800)
    web = Output.objects.create(route=news, name="web", protocol="hls", profile=hd)
    web.ladder.set([sd])
    cdn = news.outputs.get(name="cdn")
    figures = {
        "encoder": "libx264 (software)", "fps": 24.96, "speed": 0.81, "frames": 900, "dropped_frames": 17,
        "duplicated_frames": 3, "decode_errors": 0, "behind": True, "behind_reason": "speed 0.81x for 5 s",
    }  # fmt: skip
    publish_route_state(
        news.pk,
        RouteRuntime(
            state="running",
            outputs={
                str(web.pk): {"state": "sending", "reason": "", "stats": {"transcode": figures}},
                str(cdn.pk): {"state": "connected", "reason": "", "stats": {}},
            },
        ),
    )

    page = login_as(Role.VIEWER).get(f"/routes/{news.pk}/").content.decode()

    def row(output: Output) -> str:
        return page[page.index(f'data-output="{output.pk}"') :].split("</tr>")[0]

    shown = " ".join(html.unescape(row(web)).split())
    assert "hd · sd" in shown
    assert "libx264 (software) · 25.0 fps · speed 0.81x · dropped 17 · duplicated 3" in shown
    assert "behind realtime</span> speed 0.81x for 5 s" in shown
    assert "passthrough" in row(cdn)
    assert "data-transcode" not in row(cdn)


# live updates: the partials the pages poll, and the chart history


def _live(client: Client, route: Route, **query: str) -> dict:
    response = client.get(f"/routes/{route.pk}/live/", query)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.json()


def test_the_detail_pages_live_part_carries_the_same_status_as_the_api(
    login_as: Callable[[Role | None], Client], news: Route, admin_api: APIClient
) -> None:
    main, backup = news.inputs.get(name="main"), news.inputs.get(name="backup")
    publish_route_state(
        news.pk,
        RouteRuntime(
            state="running",
            active_input=backup.pk,
            inputs={
                str(main.pk): {"state": "connected", "healthy": False, "health_reason": "no data for 1006 ms"},
                str(backup.pk): {
                    "state": "connected", "healthy": True, "health_reason": "",
                    "stats": {"bitrate_1s_bps": 2_345_678.0, "srt": {
                        "rtt_ms": 23.25, "packets_lost_recv": 4, "packets_retransmitted_recv": 9}},
                },
            },
        ),
    )  # fmt: skip

    live = _live(login_as(Role.VIEWER), news)

    api = admin_api.get(f"/api/v1/routes/{news.pk}/status/").json()
    assert {**live["status"], "updated_at": None} == {**api, "updated_at": None}
    shown = html.unescape(live["html"])
    assert "on air" in _row(shown, backup)
    assert "on air" not in _row(shown, main)
    assert f'data-on-air="{backup.pk}">backup</strong>' in shown
    assert "no data for 1006 ms" in _row(shown, main)
    assert "2.35 Mb/s" in _row(shown, backup)
    assert "RTT 23.2 ms · lost 4 · retransmitted 9" in _row(shown, backup)
    assert "<button" not in shown, "a viewer gets no buttons"
    assert live["samples"] == []
    assert live["window_s"] == HISTORY_WINDOW_S


def test_the_live_part_gives_an_operator_the_buttons_and_new_events(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    client = login_as(Role.OPERATOR)
    news.pin_input(news.inputs.get(name="backup").pk)
    assert "No events yet." in _live(client, news)["html"]

    RouteEvent.objects.create(route=news, kind=EventKind.SWITCHED, message='switched from "main" to "backup"')
    shown = html.unescape(_live(client, news)["html"])

    assert ">Start</button>" in shown
    assert ">Switch to</button>" in shown
    assert ">Release</button>" in shown
    assert 'data-kind="switched"' in shown
    assert 'switched from "main" to "backup"' in shown


def test_the_live_part_sends_the_chart_samples_newer_than_asked(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    main = news.inputs.get(name="main")
    now = time.time()
    old = {"t": now - HISTORY_WINDOW_S - 30, "active": main.pk, "inputs": {str(main.pk): {"bps": 1.0, "rtt": 1.0}}}
    samples = [
        {"t": now - 3 + i, "active": main.pk, "inputs": {str(main.pk): {"bps": 1e6 + i, "rtt": 20.0 + i}}}
        for i in range(3)
    ]
    publish_route_history(news.pk, [old, *samples])
    client = login_as(Role.VIEWER)

    assert _live(client, news)["samples"] == samples, "all of the window, nothing older"
    assert _live(client, news, since=str(samples[0]["t"]))["samples"] == samples[1:]
    assert _live(client, news, since="not-a-time")["samples"] == samples


def test_the_list_pages_live_part_shows_each_routes_active_input_and_bitrate(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    sports = Route.objects.create(name="sports")
    backup = news.inputs.get(name="backup")
    publish_route_state(
        news.pk,
        RouteRuntime(
            state="running",
            active_input=backup.pk,
            inputs={str(backup.pk): {"state": "connected", "stats": {"bitrate_1s_bps": 850_400.0}}},
        ),
    )
    response = login_as(Role.VIEWER).get("/routes/live/")
    assert response.status_code == 200
    live = response.json()
    shown = live["html"]

    def row(route: Route) -> str:
        return shown[shown.index(f'data-route="{route.pk}"') :].split("</tr>")[0]

    assert "backup (priority 2)" in row(news)
    assert "850 kb/s" in row(news)
    assert "idle" in row(sports)
    assert "<button" not in shown
    assert [status["route"] for status in live["routes"]] == [news.pk, sports.pk]
    assert live["routes"][0]["active_input"] == backup.pk


@pytest.mark.parametrize("path", ["/routes/live/", "/routes/{pk}/live/"])
def test_the_live_parts_need_a_role(login_as: Callable[[Role | None], Client], news: Route, path: str) -> None:
    url = path.format(pk=news.pk)
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")
    assert login_as(None).get(url).status_code == 403
    assert login_as(Role.VIEWER).post(url).status_code == 405


def test_the_live_part_of_a_deleted_route_is_gone(login_as: Callable[[Role | None], Client], news: Route) -> None:
    client = login_as(Role.VIEWER)
    news_pk = news.pk
    news.delete()
    assert client.get(f"/routes/{news_pk}/live/").status_code == 404


@pytest.mark.parametrize(
    ("action", "body"),
    [
        pytest.param("start", {}, id="start"),
        pytest.param("stop", {}, id="stop"),
        pytest.param("switch", {"input": "backup"}, id="switch"),
        pytest.param("switch", {"input": ""}, id="release"),
    ],
)
def test_a_viewer_is_refused_every_action_even_posting_it_directly(
    login_as: Callable[[Role | None], Client], news: Route, action: str, body: dict[str, str]
) -> None:
    news.set_enabled(action == "stop")
    backup = news.inputs.get(name="backup")
    news.pin_input(backup.pk if action == "switch" and not body["input"] else None)
    if body.get("input") == "backup":
        body = {"input": str(backup.pk)}
    news.refresh_from_db()
    before = (news.enabled, news.pinned_input_id, news.config_version)

    response = login_as(Role.VIEWER).post(f"/routes/{news.pk}/{action}/", body)

    assert response.status_code == 403
    news.refresh_from_db()
    assert (news.enabled, news.pinned_input_id, news.config_version) == before


def test_the_pages_load_the_poller_which_is_revalidated_not_refetched(
    login_as: Callable[[Role | None], Client], news: Route
) -> None:
    client = login_as(Role.VIEWER)
    for page in ("/", f"/routes/{news.pk}/"):
        assert '<script src="/ui/live.js" defer></script>' in client.get(page).content.decode()

    script = Client().get("/ui/live.js")

    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert script["Cache-Control"] == "no-cache"
    assert b"data-live-url" in script.content
    again = Client().get("/ui/live.js", HTTP_IF_NONE_MATCH=script["ETag"])
    assert again.status_code == 304
    assert again.content == b""
