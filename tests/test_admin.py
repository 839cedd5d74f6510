"""The admin: a route page with its inputs, outputs and event log; secrets never shown; keys shown once."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from routes.choices import EventKind
from routes.models import ApiKey, Input, Node, Output, Route, RouteEvent, TranscodeProfile

PASSPHRASE = "correct-horse-42"


@pytest.fixture
def admin_site(db: None, django_user_model: type[AbstractUser]) -> Client:
    user = django_user_model.objects.create_superuser("root", "root@example.net", "pw-not-checked-here")
    client = Client()
    client.force_login(user)
    return client


def _inline(prefix: str, rows: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{key}": value for key, value in row.items()})
    return data


def _route_form(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], initial: int = 0) -> dict:
    return {
        "name": name,
        "failover_mode": "auto",
        "holdoff_s": 10,
        "input_timeout_ms": 300,
        "slate": "none",
        **_inline("inputs", inputs, initial),
        **_inline("outputs", outputs),
        **_inline("events", []),
    }


SRT_INPUT = {
    "name": "main", "priority": 1, "protocol": "srt", "mode": "listener", "port": 9001,
    "streamid": "news/main", "latency_ms": 120, "pbkeylen": 16, "passphrase": PASSPHRASE,
}  # fmt: skip
SRT_OUTPUT = {"name": "cdn", "protocol": "srt", "mode": "caller", "host": "cdn.example.net", "port": 7000,
              "latency_ms": 120, "pbkeylen": 16, "enabled": "on", "segment_s": 4, "playlist_size": 6,
              "rotate_s": 3600, "keep_files": 0, "keep_hours": 0}  # fmt: skip


def test_create_route_with_input_and_output(admin_site: Client) -> None:
    response = admin_site.post("/admin/routes/route/add/", _route_form("news", [SRT_INPUT], [SRT_OUTPUT]))
    assert response.status_code == 302, response.content.decode()[:2000]
    route = Route.objects.get(name="news")
    main = route.inputs.get()
    assert (main.port, main.streamid, main.passphrase) == (9001, "news/main", PASSPHRASE)
    assert route.outputs.get().host == "cdn.example.net"


def test_bad_inline_is_explained_and_nothing_is_saved(admin_site: Client) -> None:
    bad = {**SRT_INPUT, "passphrase": "short"}
    response = admin_site.post("/admin/routes/route/add/", _route_form("news", [bad], []))
    assert response.status_code == 200
    assert "An SRT passphrase must be 10 to 79 characters long; this one has 5." in response.content.decode()
    assert not Route.objects.exists()


def test_change_page_lists_inputs_by_priority_events_and_hides_secrets(admin_site: Client, route: Route) -> None:
    Input.objects.create(route=route, name="backup-feed", priority=2, protocol="udp", port=5000)
    Input.objects.create(route=route, name="main-feed", priority=1, protocol="srt", port=9001, passphrase=PASSPHRASE)
    Output.objects.create(route=route, name="yt", protocol="rtmp", url="rtmp://a.example/live", stream_key="yt-key-1")
    RouteEvent.objects.create(route=route, kind=EventKind.SWITCHED, message="switched to backup-feed: main silent")
    page = admin_site.get(f"/admin/routes/route/{route.pk}/change/").content.decode()
    assert page.index("main-feed") < page.index("backup-feed")
    assert "switched to backup-feed: main silent" in page
    assert PASSPHRASE not in page
    assert "yt-key-1" not in page


def test_saving_without_retyping_keeps_the_passphrase_and_clear_removes_it(admin_site: Client, route: Route) -> None:
    main = Input.objects.create(route=route, name="main", priority=1, protocol="srt", port=9001, passphrase=PASSPHRASE)
    row = {**SRT_INPUT, "id": main.pk, "route": route.pk, "passphrase": "", "latency_ms": 200}
    response = admin_site.post(f"/admin/routes/route/{route.pk}/change/", _route_form("news", [row], [], initial=1))
    assert response.status_code == 302, response.content.decode()[:2000]
    main.refresh_from_db()
    assert (main.latency_ms, main.passphrase) == (200, PASSPHRASE)

    row["clear_secrets"] = "on"
    admin_site.post(f"/admin/routes/route/{route.pk}/change/", _route_form("news", [row], [], initial=1))
    main.refresh_from_db()
    assert main.passphrase == ""


def test_start_and_stop_actions(admin_site: Client, route: Route) -> None:
    other = Route.objects.create(name="sports")
    admin_site.post("/admin/routes/route/", {"action": "start_routes", "_selected_action": [route.pk]})
    route.refresh_from_db()
    other.refresh_from_db()
    assert (route.enabled, other.enabled) == (True, False)
    admin_site.post("/admin/routes/route/", {"action": "stop_routes", "_selected_action": [route.pk]})
    route.refresh_from_db()
    assert route.enabled is False


def test_api_key_is_shown_once_and_works(admin_site: Client, django_user_model: type[AbstractUser]) -> None:
    robot = django_user_model.objects.create_user("playout")
    response = admin_site.post(
        "/admin/routes/apikey/add/", {"user": robot.pk, "name": "playout", "role": "operator"}, follow=True
    )
    shown = [str(m) for m in response.context["messages"] if "not shown again" in str(m)]
    assert len(shown) == 1
    plaintext = shown[0].rsplit(" ", 1)[-1]
    key = ApiKey.objects.get()
    assert plaintext not in (key.prefix, key.key_hash)
    assert plaintext not in admin_site.get(f"/admin/routes/apikey/{key.pk}/change/").content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/v1/routes/").status_code == 200


HLS_OUTPUT = {**SRT_OUTPUT, "name": "web", "protocol": "hls", "mode": "", "host": "", "port": ""}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            {**SRT_OUTPUT, "profile": "hd", "ladder": ["sd"]},
            "Only HLS outputs take an ABR ladder; remove its profiles or choose the hls protocol.",
            id="not-hls",
        ),
        pytest.param(
            {**HLS_OUTPUT, "ladder": ["sd"]},
            "An ABR ladder adds renditions beside the transcode profile: choose that profile first.",
            id="no-profile",
        ),
        pytest.param(
            {**HLS_OUTPUT, "profile": "hd", "ladder": ["copy"]},
            "Profile &quot;copy&quot; copies the video; every rendition of a ladder must encode it (h264 or hevc).",
            id="copy-rung",
        ),
    ],
)
def test_a_bad_ladder_is_explained_as_in_the_api(admin_site: Client, row: dict[str, Any], message: str) -> None:
    profiles = {
        "hd": TranscodeProfile.objects.create(name="hd", video_bitrate_kbps=3000),
        "sd": TranscodeProfile.objects.create(name="sd", video_bitrate_kbps=800),
        "copy": TranscodeProfile.objects.create(name="copy", video_codec="copy"),
    }
    row = {**row, "ladder": [profiles[name].pk for name in row["ladder"]]}
    if "profile" in row:
        row["profile"] = profiles[row["profile"]].pk

    response = admin_site.post("/admin/routes/route/add/", _route_form("news", [SRT_INPUT], [row]))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Route.objects.exists()


def test_a_ladder_is_saved_from_the_admin_and_restarts_the_route(admin_site: Client, route: Route) -> None:
    hd = TranscodeProfile.objects.create(name="hd", video_bitrate_kbps=3000)
    sd = TranscodeProfile.objects.create(name="sd", video_bitrate_kbps=800)
    web = Output.objects.create(route=route, name="web", protocol="hls", profile=hd)
    before = Route.objects.get(pk=route.pk).config_version
    row = {**HLS_OUTPUT, "id": web.pk, "route": route.pk, "profile": hd.pk, "ladder": [sd.pk]}
    form = _route_form("news", [], [row])
    form.update({key: value for key, value in _inline("outputs", [row], initial=1).items()})

    response = admin_site.post(f"/admin/routes/route/{route.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(web.ladder.all()) == [sd]
    assert Route.objects.get(pk=route.pk).config_version > before


def test_a_node_shows_its_encoders_and_why_others_are_missing(admin_site: Client) -> None:
    node = Node.objects.create(
        name="edge-1", capabilities=["software"], encoder_problems={"vaapi": "no render device (/dev/dri/renderD*)"}
    )

    page = admin_site.get(f"/admin/routes/node/{node.pk}/change/").content.decode()

    assert "no render device (/dev/dri/renderD*)" in page
    assert 'name="encoder_problems"' not in page, "probed by the worker, not edited"
    assert "software (x264/x265)" in admin_site.get("/admin/routes/node/").content.decode()
