"""Transcoding through the API: an output's profile and ABR ladder, refused with a message per field;
profiles; the encoders each node found; and a transcoding output's figures in the route's status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from routes.choices import NodeState, Role
from routes.models import Node, Output, Route, TranscodeProfile
from routes.runtime import RouteRuntime, publish_route_state

HLS = {"name": "web", "protocol": "hls"}
UDP = {"name": "plant", "protocol": "udp", "host": "198.51.100.20", "port": 5000}


@pytest.fixture
def profiles(db: None) -> dict[str, TranscodeProfile]:
    return {
        "hd": TranscodeProfile.objects.create(name="hd", width=1280, height=720, video_bitrate_kbps=3000),
        "sd": TranscodeProfile.objects.create(name="sd", width=640, height=360, video_bitrate_kbps=800),
        "low": TranscodeProfile.objects.create(name="low", width=426, height=240, video_bitrate_kbps=400),
        "copy": TranscodeProfile.objects.create(name="copy", video_codec="copy"),
        "audio-only": TranscodeProfile.objects.create(
            name="audio-only", video_codec="copy", audio_codec="aac", audio_bitrate_kbps=128
        ),
    }


def _payload(route: Route, profiles: dict[str, TranscodeProfile], base: dict[str, Any], **changes: Any) -> dict:
    """Profiles named in ``profile`` and ``ladder`` become their ids; unknown names stay as given."""
    body = {"route": route.pk, **base, **changes}

    def pk(name: Any) -> Any:
        return profiles[name].pk if name in profiles else name

    if body.get("profile") is not None:
        body["profile"] = pk(body["profile"])
    if "ladder" in body:
        body["ladder"] = [pk(name) for name in body["ladder"]]
    return body


# (base output, changes, field at fault, message)
REFUSED = [
    pytest.param(
        UDP, {"profile": "hd", "ladder": ["sd"]}, "ladder",
        "Only HLS outputs take an ABR ladder; remove its profiles or choose the hls protocol.", id="not-hls",
    ),
    pytest.param(
        HLS, {"ladder": ["sd"]}, "ladder",
        "An ABR ladder adds renditions beside the transcode profile: choose that profile first.", id="no-profile",
    ),
    pytest.param(
        HLS, {"profile": "hd", "ladder": ["sd", "copy"]}, "ladder",
        'Profile "copy" copies the video; every rendition of a ladder must encode it (h264 or hevc).', id="copy-rung",
    ),
    pytest.param(
        HLS, {"profile": "copy", "ladder": ["sd"]}, "profile",
        'Profile "copy" copies the video, but with an ABR ladder the transcode profile is one of the renditions '
        "and must encode it (h264 or hevc).",
        id="copy-main",
    ),
    pytest.param(
        HLS, {"profile": "hd", "ladder": ["sd", "sd"]}, "ladder",
        'Profile "sd" is listed twice; each rendition needs its own profile.', id="twice",
    ),
    pytest.param(
        HLS, {"profile": "hd", "ladder": ["hd", "sd"]}, "ladder",
        "Profile \"hd\" is already this output's transcode profile; the ladder lists the other renditions.",
        id="main-again",
    ),
    pytest.param(
        HLS, {"profile": "hd", "ladder": [999999]}, "ladder", "There is no transcode profile with id 999999.",
        id="unknown",
    ),
    pytest.param(
        UDP, {"profile": "audio-only"}, "profile",
        'Profile "audio-only" re-encodes only the audio, which is not supported yet: choose a profile that '
        "encodes the video too, or one that copies both.",
        id="audio-only",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("base", "changes", "field", "message"), REFUSED)
def test_a_bad_transcode_setting_is_refused_naming_the_field(
    admin_api: APIClient,
    route: Route,
    profiles: dict[str, TranscodeProfile],
    base: dict[str, Any],
    changes: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = admin_api.post("/api/v1/outputs/", _payload(route, profiles, base, **changes), format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {field: [message]}
    assert response.json()["message"] == f"{field}: {message}"
    assert not Output.objects.exists()


def test_a_ladder_is_a_list_of_profile_ids(
    admin_api: APIClient, route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    created = admin_api.post(
        "/api/v1/outputs/", _payload(route, profiles, HLS, profile="hd", ladder=["sd", "low"]), format="json"
    )
    assert created.status_code == 201, created.content
    detail = f"/api/v1/outputs/{created.json()['id']}/"
    assert sorted(created.json()["ladder"]) == sorted([profiles["sd"].pk, profiles["low"].pk])
    assert created.json()["profile"] == profiles["hd"].pk

    kept = admin_api.patch(detail, {"segment_s": 2}, format="json")
    assert kept.status_code == 200, kept.content
    assert sorted(kept.json()["ladder"]) == sorted([profiles["sd"].pk, profiles["low"].pk]), "left out: kept"

    moved = admin_api.patch(detail, {"protocol": "udp", "host": "198.51.100.20", "port": 5000}, format="json")
    assert moved.status_code == 400, "the ladder it keeps only fits an HLS output"
    assert list(moved.json()["errors"]) == ["ladder"]

    cleared = admin_api.patch(detail, {"ladder": []}, format="json")
    assert cleared.status_code == 200, cleared.content
    assert cleared.json()["ladder"] == []


def test_changing_a_ladder_or_a_profile_in_use_restarts_the_routes_that_use_it(
    admin_api: APIClient, route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    other = Route.objects.create(name="sport")
    web = Output.objects.create(route=route, profile=profiles["hd"], **HLS)
    Output.objects.create(route=other, **UDP)

    def versions() -> tuple[int, int]:
        return Route.objects.get(pk=route.pk).config_version, Route.objects.get(pk=other.pk).config_version

    def patch(url: str, body: dict[str, Any]) -> None:
        response = admin_api.patch(url, body, format="json")
        assert response.status_code == 200, response.content

    before = versions()
    patch(f"/api/v1/outputs/{web.pk}/", {"ladder": [profiles["sd"].pk]})
    after_ladder = versions()
    assert after_ladder[0] > before[0]
    assert after_ladder[1] == before[1]

    patch(f"/api/v1/profiles/{profiles['sd'].pk}/", {"video_bitrate_kbps": 900})
    after_rung = versions()
    assert after_rung[0] > after_ladder[0], "a ladder's profile changed"
    assert after_rung[1] == before[1]

    patch(f"/api/v1/profiles/{profiles['hd'].pk}/", {"fps": 25})
    assert versions()[0] > after_rung[0], "the main profile changed"

    untouched = versions()
    patch(f"/api/v1/profiles/{profiles['low'].pk}/", {"fps": 25})
    assert versions() == untouched, "a profile no output uses restarts nothing"


def test_a_profile_shows_every_setting(admin_api: APIClient, profiles: dict[str, TranscodeProfile]) -> None:
    body = admin_api.get(f"/api/v1/profiles/{profiles['hd'].pk}/").json()

    assert body == {
        "id": profiles["hd"].pk,
        "name": "hd",
        "video_codec": "h264",
        "encoder": "auto",
        "width": 1280,
        "height": 720,
        "fps": None,
        "video_bitrate_kbps": 3000,
        "gop": None,
        "preset": "veryfast",
        "audio_codec": "copy",
        "audio_bitrate_kbps": None,
    }


def test_a_profile_that_only_re_encodes_audio_can_be_kept_but_not_used(
    admin_api: APIClient, route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    created = admin_api.post(
        "/api/v1/profiles/",
        {"name": "aac-only", "video_codec": "copy", "audio_codec": "aac", "audio_bitrate_kbps": 96},
        format="json",
    )
    assert created.status_code == 201, created.content
    used = admin_api.post(
        "/api/v1/outputs/", {**_payload(route, profiles, UDP), "profile": created.json()["id"]}, format="json"
    )
    assert used.status_code == 400
    assert "re-encodes only the audio, which is not supported yet" in used.json()["errors"]["profile"][0]


@pytest.fixture
def viewer_api(api_client_for: Callable[[Role | None], APIClient]) -> APIClient:
    return api_client_for(Role.VIEWER)


def test_nodes_show_the_encoders_they_found_and_why_others_are_missing(viewer_api: APIClient) -> None:
    gpu = Node.objects.create(
        name="gpu-1",
        state=NodeState.ONLINE,
        capabilities=["vaapi", "software"],
        encoder_problems={"qsv": "h264_qsv does not open: Function not implemented", "nvenc": "no NVIDIA device"},
    )

    body = viewer_api.get(f"/api/v1/nodes/{gpu.pk}/").json()

    assert body["capabilities"] == ["vaapi", "software"]
    assert body["encoder_problems"] == {
        "qsv": "h264_qsv does not open: Function not implemented",
        "nvenc": "no NVIDIA device",
    }
    assert viewer_api.patch(f"/api/v1/nodes/{gpu.pk}/", {"capabilities": []}, format="json").status_code in (403, 405)


def test_the_status_shows_each_transcoding_outputs_encoder_and_figures(
    viewer_api: APIClient, route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    scaled = Output.objects.create(route=route, profile=profiles["sd"], **UDP)
    plain = Output.objects.create(route=route, name="copy", protocol="udp", host="198.51.100.21", port=5001)
    figures = {
        "encoder": "libx264 (software)", "fps": 25.0, "speed": 1.01, "frames": 250, "dropped_frames": 0,
        "duplicated_frames": 2, "decode_errors": 0, "behind": False, "behind_reason": "",
    }  # fmt: skip
    publish_route_state(
        route.pk,
        RouteRuntime(
            state="running",
            outputs={
                str(scaled.pk): {"state": "sending", "reason": "", "stats": {"bytes": 1000, "transcode": figures}},
                str(plain.pk): {"state": "sending", "reason": "", "stats": {"bytes": 2000}},
            },
        ),
    )

    outputs = {o["name"]: o for o in viewer_api.get(f"/api/v1/routes/{route.pk}/status/").json()["outputs"]}

    assert outputs["plant"]["transcode"] == figures
    assert outputs["plant"]["stats"] == {"bytes": 1000}
    assert outputs["copy"]["transcode"] is None


def test_a_profile_leaves_the_ladders_it_was_in_when_deleted_and_their_routes_restart(
    admin_api: APIClient, route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    web = Output.objects.create(route=route, profile=profiles["hd"], **HLS)
    # From the profile's side, as a shell or a data migration would do it.
    profiles["sd"].ladder_outputs.add(web)
    profiles["low"].ladder_outputs.add(web)
    before = Route.objects.get(pk=route.pk).config_version

    assert admin_api.delete(f"/api/v1/profiles/{profiles['sd'].pk}/").status_code == 204

    assert list(web.ladder.all()) == [profiles["low"]]
    assert Route.objects.get(pk=route.pk).config_version > before
    in_use = admin_api.delete(f"/api/v1/profiles/{profiles['hd'].pk}/")
    assert in_use.status_code == 409, "an output's main profile stays until the output lets go of it"
    assert 'output "news / web"' in in_use.json()["message"]


def test_adding_to_a_ladder_from_the_profiles_side_restarts_the_route(
    route: Route, profiles: dict[str, TranscodeProfile]
) -> None:
    web = Output.objects.create(route=route, profile=profiles["hd"], **HLS)
    before = Route.objects.get(pk=route.pk).config_version

    profiles["sd"].ladder_outputs.add(web)
    added = Route.objects.get(pk=route.pk).config_version
    profiles["sd"].ladder_outputs.clear()

    assert before < added < Route.objects.get(pk=route.pk).config_version
