"""The route management commands: ``routes`` (list, start, stop), ``export_routes`` and ``import_routes``."""

from __future__ import annotations

import json
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connection, connections, models
from django.test.utils import CaptureQueriesContext

from routes.config_io.schema import FIELDS
from routes.management.commands.routes import Command as RoutesCommand
from routes.models import Input, Node, Output, Route, TranscodeProfile
from routes.runtime import RUNNING, RouteRuntime, publish_route_state

SECRETS = {
    ("news", "inputs", "main", "passphrase"): "main-passphrase-0123",
    ("news", "inputs", "backup", "stream_key"): "backup-stream-key",
    ("news", "outputs", "cdn", "passphrase"): "cdn-passphrase-4567",
    ("sport", "outputs", "youtube", "stream_key"): "yt-abcd-efgh-ijkl",
}


def _saved(obj: models.Model) -> Any:
    obj.full_clean()
    obj.save()
    return obj


@pytest.fixture
def setup(db: None) -> dict[str, Any]:
    """Two routes covering each protocol family, secrets, a profile, pins and both desired states."""
    edge = Node.objects.create(name="edge-1")
    hd = _saved(
        TranscodeProfile(
            name="hd", width=1280, height=720, fps=50, video_bitrate_kbps=4000, gop=100, audio_codec="aac",
            audio_bitrate_kbps=128,
        )
    )  # fmt: skip
    _saved(TranscodeProfile(name="passthrough-audio", video_codec="copy"))
    news = _saved(Route(name="news", failback=True, holdoff_s=30, input_timeout_ms=400, pinned_node=edge))
    main = _saved(
        Input(
            route=news, name="main", priority=1, protocol="srt", port=9001, streamid="news",
            passphrase=SECRETS["news", "inputs", "main", "passphrase"], pbkeylen=32, latency_ms=200,
        )
    )  # fmt: skip
    _saved(
        Input(
            route=news, name="backup", priority=2, protocol="rtmp", port=1936, timeout_ms=800,
            stream_key=SECRETS["news", "inputs", "backup", "stream_key"],
        )
    )  # fmt: skip
    _saved(
        Output(
            route=news, name="cdn", protocol="srt", mode="caller", host="cdn.example.net", port=7000, profile=hd,
            passphrase=SECRETS["news", "outputs", "cdn", "passphrase"],
        )
    )  # fmt: skip
    _saved(Output(route=news, name="monitor", protocol="udp", host="198.51.100.10", port=5000, enabled=False))
    news.set_enabled(True)
    sport = _saved(Route(name="sport", failover_mode="manual"))
    cam = _saved(Input(route=sport, name="cam", priority=1, protocol="udp", host="239.1.1.1", port=5004))
    _saved(Input(route=sport, name="file", priority=5, protocol="file", url="/media/slate.ts"))
    _saved(
        Output(
            route=sport, name="youtube", protocol="rtmp", url="rtmp://a.rtmp.youtube.com/live2",
            stream_key=SECRETS["sport", "outputs", "youtube", "stream_key"],
        )
    )  # fmt: skip
    sport.pin_input(cam.pk)
    return {"news": news, "sport": sport, "main": main}


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def dump_database() -> dict[str, Any]:
    """Every editable setting of every route, input, output and profile, with references by name."""

    def fields(obj: models.Model) -> dict[str, Any]:
        values = {}
        for field in obj._meta.concrete_fields:
            if field.primary_key or not field.editable:
                continue
            value = getattr(obj, field.name)
            values[field.name] = value.name if isinstance(value, models.Model) else value
        for field in obj._meta.many_to_many:
            values[field.name] = sorted(related.name for related in getattr(obj, field.name).all())
        return values

    return {
        "profiles": {p.name: fields(p) for p in TranscodeProfile.objects.all()},
        "routes": {r.name: fields(r) for r in Route.objects.all()},
        "inputs": {(i.route.name, i.name): fields(i) for i in Input.objects.select_related("route")},
        "outputs": {(o.route.name, o.name): fields(o) for o in Output.objects.select_related("route")},
    }


def wipe() -> None:
    Route.objects.all().delete()
    TranscodeProfile.objects.all().delete()


def export_file(tmp_path: Path, *options: str) -> Path:
    path = tmp_path / "routes.yaml"
    run("export_routes", "--output", str(path), *options)
    return path


def edit(path: Path, change: Any) -> None:
    """Apply ``change`` to the parsed file and write it back, as an engineer editing it would."""
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def set_secret_variables(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set each variable the file refers to, to the secret it stands for."""
    document = yaml.safe_load(path.read_text())
    for (route, kind, name, field), value in SECRETS.items():
        monkeypatch.setenv(document["routes"][route][kind][name][field]["env"], value)


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in {"INSERT", "UPDATE", "DELETE"}]


def _keys(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    return set(node).union(*(_keys(value) for value in node.values()))


# routes list / start / stop


def test_list_shows_desired_and_live_state(setup: dict[str, Any]) -> None:
    publish_route_state(
        setup["news"].pk,
        RouteRuntime(state=RUNNING, node="edge-1", active_input=setup["main"].pk, listeners_bound=True),
    )

    out, _ = run("routes", "list")

    header, news, sport = out.splitlines()
    assert header.split()[:4] == ["NAME", "DESIRED", "STATE", "ACTIVE"]
    assert news.split() == ["news", "enabled", "running", "main", "edge-1", "2", "2", "-"]
    assert sport.split() == ["sport", "disabled", "idle", "-", "-", "2", "1", "-"]


def test_list_as_json(setup: dict[str, Any]) -> None:
    publish_route_state(setup["news"].pk, RouteRuntime(state=RUNNING, node="edge-1", active_input=setup["main"].pk))

    out, _ = run("routes", "list", "--json")

    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["news"] | {"updated_at": None} == {
        "name": "news", "enabled": True, "state": "running", "reason": "", "node": "edge-1",
        "active_input": "main", "pinned_input": None, "inputs": 2, "outputs": 2, "updated_at": None,
    }  # fmt: skip
    assert rows["news"]["updated_at"] is not None
    assert rows["sport"]["enabled"] is False
    assert rows["sport"]["state"] == "idle"
    assert rows["sport"]["pinned_input"] == "cam"


def test_list_without_routes(db: None) -> None:
    assert run("routes", "list")[0] == "No routes.\n"
    assert json.loads(run("routes", "list", "--json")[0]) == []


def test_start_and_stop_change_the_desired_state(setup: dict[str, Any]) -> None:
    out, _ = run("routes", "start", "sport")

    assert out == 'Route "sport" set to run.\n'
    assert Route.objects.get(name="sport").enabled is True
    assert run("routes", "start", "sport")[0] == 'Route "sport" was already set to run.\n'

    out, _ = run("routes", "stop", "news", "sport")

    assert out == 'Route "news" stopped.\nRoute "sport" stopped.\n'
    assert not Route.objects.filter(enabled=True).exists()
    listed = run("routes", "list")[0]
    assert [line.split()[1] for line in listed.splitlines()[1:]] == ["disabled", "disabled"]


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        pytest.param("nwes", '"news"', id="typo"),
        pytest.param("NEWS", '"news"', id="case"),
        pytest.param("spo", '"sport"', id="prefix"),
    ],
)
def test_unknown_name_fails_and_suggests_close_ones(setup: dict[str, Any], typed: str, suggested: str) -> None:
    with pytest.raises(CommandError, match=f'There is no route named "{typed}". Did you mean {suggested}'):
        run("routes", "stop", typed)

    assert Route.objects.get(name="news").enabled is True


def test_unknown_name_exits_non_zero_and_changes_nothing(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line closes the database connections on the way out; the test's transaction needs its own.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    with pytest.raises(SystemExit) as exited:
        RoutesCommand().run_from_argv(["manage.py", "routes", "start", "sport", "weather"])

    assert exited.value.code != 0
    assert 'There is no route named "weather". See `manage.py routes list`' in capsys.readouterr().err
    assert Route.objects.get(name="sport").enabled is False, "a known name given with an unknown one is not started"


# export_routes / import_routes


def test_export_holds_no_secret_by_default(setup: dict[str, Any], tmp_path: Path) -> None:
    out, err = run("export_routes")

    for secret in SECRETS.values():
        assert secret not in out
    assert "      passphrase: {env: VC_SECRET_NEWS_IN_MAIN_PASSPHRASE}\n" in out
    assert "      stream_key: {env: VC_SECRET_SPORT_OUT_YOUTUBE_STREAM_KEY}\n" in out
    assert "VC_SECRET_NEWS_OUT_CDN_PASSPHRASE" in err, "the variables to set are listed"
    assert out == export_file(tmp_path).read_text(), "--output writes the same text"


def test_export_is_keyed_by_name_with_every_setting(setup: dict[str, Any]) -> None:
    document = yaml.safe_load(run("export_routes")[0])

    assert list(document) == ["version", "profiles", "routes"]
    assert list(document["profiles"]) == ["hd", "passthrough-audio"]
    news = document["routes"]["news"]
    assert list(news) == [
        "enabled", "failover_mode", "failback", "holdoff_s", "input_timeout_ms", "slate", "pinned_node",
        "pinned_input", "inputs", "outputs",
    ]  # fmt: skip
    assert news["enabled"] is True
    assert news["pinned_node"] == "edge-1"
    assert list(news["inputs"]) == ["main", "backup"], "inputs in priority order"
    assert news["outputs"]["cdn"]["profile"] == "hd"
    assert news["outputs"]["monitor"]["latency_ms"] == 120, "defaults are written out"
    assert document["routes"]["sport"]["pinned_input"] == "cam"
    assert not _keys(document) & {"id", "pk", "route"}, "no database ids"


def test_export_lists_every_editable_model_field() -> None:
    for model, exported in FIELDS.items():
        fields = [*model._meta.concrete_fields, *model._meta.many_to_many]
        editable = {f.name for f in fields if f.editable and not f.primary_key and f.name != "route"}
        assert editable - {"name"} == set(exported), f"{model.__name__} fields the routes file does not carry"


def test_export_wipe_import_gives_back_the_same_routes(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump_database()
    path = export_file(tmp_path)
    set_secret_variables(path, monkeypatch)
    wipe()

    out, _ = run("import_routes", str(path))

    assert dump_database() == before
    assert out.splitlines()[-1] == "11 changed (11 created, 0 updated, 0 deleted)."
    assert path.read_text() == run("export_routes")[0], "exporting again gives the same file"


def test_secrets_round_trip_with_include_secrets(setup: dict[str, Any], tmp_path: Path) -> None:
    before = dump_database()
    path = export_file(tmp_path, "--include-secrets")
    document = yaml.safe_load(path.read_text())
    for (route, kind, name, field), secret in SECRETS.items():
        assert document["routes"][route][kind][name][field] == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a file holding secrets is private to its owner"
    wipe()

    run("import_routes", str(path))

    assert dump_database() == before


def test_importing_twice_changes_nothing(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export_file(tmp_path)
    set_secret_variables(path, monkeypatch)
    wipe()
    run("import_routes", str(path))
    before = dump_database()
    updated = dict(Route.objects.values_list("name", "updated"))

    with CaptureQueriesContext(connection) as queries:
        out, _ = run("import_routes", str(path))

    assert out == "0 changed (0 created, 0 updated, 0 deleted).\n"
    assert writes(queries) == [], "an unchanged file writes nothing, so no pipeline restarts"
    assert dump_database() == before
    assert dict(Route.objects.values_list("name", "updated")) == updated


def test_existing_secrets_are_kept_when_their_variable_is_unset(setup: dict[str, Any], tmp_path: Path) -> None:
    before = dump_database()

    out, _ = run("import_routes", str(export_file(tmp_path)))

    assert out == "0 changed (0 created, 0 updated, 0 deleted).\n"
    assert dump_database() == before


def test_unset_variable_for_a_new_secret_is_an_error(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export_file(tmp_path)
    wipe()
    monkeypatch.setenv("VC_SECRET_NEWS_IN_MAIN_PASSPHRASE", "")  # empty counts as unset, not as "no passphrase"

    with pytest.raises(CommandError) as error:
        run("import_routes", str(path))

    message = str(error.value)
    assert (
        'route "news" / input "main" / passphrase: the environment variable VC_SECRET_NEWS_IN_MAIN_PASSPHRASE '
        "is not set." in message
    )
    assert "VC_SECRET_SPORT_OUT_YOUTUBE_STREAM_KEY" in message, "every missing variable is named at once"
    assert not Route.objects.exists()
    assert not TranscodeProfile.objects.exists()


def test_awkward_names_round_trip_with_a_variable_each(
    db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names YAML would read as a boolean or a number, and names that map to the same variable."""
    for port, name in enumerate(["studio a", "studio-a", "yes", "2024", "late: news #2"], start=9100):
        route = _saved(Route(name=name))
        _saved(Input(route=route, name="cam", priority=1, protocol="srt", port=port, passphrase=f"secret-of-{name}"))
    before = dump_database()
    out, err = run("export_routes")
    variables = err.split("importing:\n")[1].split()

    assert len(set(variables)) == 5
    assert sum(v.startswith("VC_SECRET_STUDIO_A_IN_CAM_PASSPHRASE_") for v in variables) == 2
    document = yaml.safe_load(out)
    for name, route in document["routes"].items():
        monkeypatch.setenv(route["inputs"]["cam"]["passphrase"]["env"], f"secret-of-{name}")
    path = tmp_path / "routes.yaml"
    path.write_text(out)
    wipe()

    run("import_routes", str(path))

    assert dump_database() == before


def _change_file(document: dict[str, Any]) -> None:
    news = document["routes"]["news"]
    news["enabled"] = False
    news["inputs"]["main"]["port"] = 9005
    news["outputs"]["cdn"]["passphrase"] = "a-new-cdn-passphrase"
    document["routes"]["weather"] = {"inputs": {"radar": {"priority": 1, "protocol": "srt", "port": 9010}}}


def test_dry_run_prints_what_would_change_and_changes_nothing(setup: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(tmp_path)
    edit(path, _change_file)
    before = dump_database()

    out, _ = run("import_routes", str(path), "--dry-run")

    assert out.splitlines() == [
        'updated route "news": enabled true -> false',
        'updated route "news" / input "main": port 9001 -> 9005',
        'updated route "news" / output "cdn": passphrase changed',
        'created route "weather"',
        'created route "weather" / input "radar"',
        "Dry run: 5 would change (2 created, 3 updated, 0 deleted); nothing was saved.",
    ]
    assert dump_database() == before
    assert "a-new-cdn-passphrase" not in out

    out, _ = run("import_routes", str(path))

    assert out.splitlines()[:-1] == [
        'updated route "news": enabled true -> false',
        'updated route "news" / input "main": port 9001 -> 9005',
        'updated route "news" / output "cdn": passphrase changed',
        'created route "weather"',
        'created route "weather" / input "radar"',
    ]
    assert Route.objects.get(name="news").enabled is False
    assert Output.objects.get(name="cdn").passphrase == "a-new-cdn-passphrase"
    assert Input.objects.get(name="radar").mode == "listener", "model defaults apply to what the file leaves out"


def _drop_sport_and_backup(document: dict[str, Any]) -> None:
    del document["routes"]["sport"]
    del document["routes"]["news"]["inputs"]["backup"]


def test_prune_removes_what_is_absent(setup: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(tmp_path)
    edit(path, _drop_sport_and_backup)

    assert run("import_routes", str(path))[0].startswith("0 changed"), "without --prune absent objects stay"
    assert Route.objects.filter(name="sport").exists()

    out, _ = run("import_routes", str(path), "--prune")

    assert out.splitlines() == [
        'deleted route "sport"',
        'deleted route "news" / input "backup"',
        "2 changed (0 created, 0 updated, 2 deleted).",
    ]
    assert list(Route.objects.values_list("name", flat=True)) == ["news"]
    assert list(Input.objects.values_list("name", flat=True)) == ["main"]
    assert set(Output.objects.values_list("name", flat=True)) == {"cdn", "monitor"}
    assert TranscodeProfile.objects.count() == 2, "profiles are never pruned"


def _break_main_passphrase(document: dict[str, Any]) -> None:
    document["profiles"]["hd"]["video_bitrate_kbps"] = 6000
    document["routes"]["news"]["holdoff_s"] = 60
    document["routes"]["alpha"] = {"inputs": {"cam": {"priority": 1, "protocol": "udp", "port": 5100}}}
    document["routes"]["news"]["inputs"]["main"]["passphrase"] = "short"


def test_validation_error_rolls_back_the_whole_import(setup: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(tmp_path)
    edit(path, _break_main_passphrase)
    before = dump_database()

    with pytest.raises(CommandError) as error:
        run("import_routes", str(path))

    assert str(error.value) == (
        "Nothing was imported:\n"
        '  route "news" / input "main" / passphrase: '
        "An SRT passphrase must be 10 to 79 characters long; this one has 5."
    )
    assert dump_database() == before, "the profile and route saved before the error are rolled back"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda d: d["routes"]["news"]["inputs"]["main"].update(pasphrase="x" * 12),
            'route "news" / input "main": unknown setting "pasphrase". Did you mean "passphrase"?',
            id="misspelt-setting",
        ),
        pytest.param(
            lambda d: d["routes"]["news"]["inputs"]["main"].update(port="90o1"),
            'route "news" / input "main" / port: expected a whole number, got "90o1".',
            id="port-not-a-number",
        ),
        pytest.param(
            lambda d: d["routes"]["news"]["outputs"]["cdn"].update(profile="uhd"),
            'route "news" / output "cdn" / profile: there is no transcode profile named "uhd".',
            id="unknown-profile",
        ),
        pytest.param(
            lambda d: d["routes"]["news"]["outputs"]["cdn"].update(ladder=["uhd"]),
            'route "news" / output "cdn" / ladder: there is no transcode profile named "uhd".',
            id="unknown-ladder-profile",
        ),
        pytest.param(
            lambda d: d["routes"]["news"]["outputs"]["cdn"].update(ladder="hd"),
            'route "news" / output "cdn" / ladder: expected a list of names, got "hd".',
            id="ladder-not-a-list",
        ),
        pytest.param(
            lambda d: d["routes"]["news"]["outputs"]["cdn"].update(ladder=["passthrough-audio"]),
            'route "news" / output "cdn" / ladder: Only HLS outputs take an ABR ladder',
            id="ladder-not-hls",
        ),
        pytest.param(
            lambda d: d["routes"]["sport"]["inputs"]["file"].update(priority=1),
            'route "sport" / input "file" / priority: Input "cam" of this route already has priority 1',
            id="priority-taken",
        ),
        pytest.param(
            lambda d: d["routes"]["sport"]["inputs"]["file"].update(protocol="srt", port=9001, url=""),
            'route "sport" / input "file" / port: Port 9001/udp is already used by the SRT listener input "main"',
            id="port-taken",
        ),
        pytest.param(
            lambda d: d["routes"]["sport"].update(pinned_input="studio"),
            'route "sport" / pinned_input: this route has no input named "studio".',
            id="unknown-pin",
        ),
    ],
)
def test_mistakes_are_reported_by_route_object_and_field(
    setup: dict[str, Any], tmp_path: Path, change: Any, message: str
) -> None:
    path = export_file(tmp_path, "--include-secrets")
    edit(path, change)
    before = dump_database()

    with pytest.raises(CommandError, match="Nothing was imported") as error:
        run("import_routes", str(path))

    assert message in str(error.value)
    assert dump_database() == before


def test_a_name_given_twice_is_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(tmp_path)
    path.write_text(path.read_text() + "  sport:\n    enabled: true\n")

    with pytest.raises(CommandError, match=r'"sport" is given twice in the same mapping[\s\S]*line \d+'):
        run("import_routes", str(path))


def _swap_and_move(document: dict[str, Any]) -> None:
    news = document["routes"]["news"]["inputs"]
    news["main"]["priority"], news["backup"]["priority"] = 2, 1
    # sport's multicast input leaves its port to a new input of news, which comes first in the file
    document["routes"]["sport"]["inputs"]["cam"]["port"] = 5006
    news["extra"] = {"priority": 3, "protocol": "udp", "host": "239.1.1.1", "port": 5004}


def test_swapped_priorities_and_moved_ports_are_checked_against_the_result(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    path = export_file(tmp_path, "--include-secrets")
    edit(path, _swap_and_move)

    out, _ = run("import_routes", str(path))

    assert out.splitlines()[-1] == "4 changed (1 created, 3 updated, 0 deleted)."
    assert list(Input.objects.filter(route__name="news").values_list("name", "priority")) == [
        ("backup", 1),
        ("main", 2),
        ("extra", 3),
    ]
    assert Input.objects.get(name="cam").port == 5006


@pytest.fixture
def ladder(setup: dict[str, Any]) -> Output:
    """An HLS output of "news" rendering "hd" and, beside it, two smaller profiles."""
    sd = _saved(TranscodeProfile(name="sd", width=640, height=360, video_bitrate_kbps=800))
    low = _saved(TranscodeProfile(name="low", width=426, height=240, video_bitrate_kbps=400))
    hd = TranscodeProfile.objects.get(name="hd")
    web = _saved(Output(route=setup["news"], name="web", protocol="hls", profile=hd))
    web.ladder.set([sd, low])
    return web


def test_a_ladder_round_trips_by_profile_names(ladder: Output, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dump_database()
    path = export_file(tmp_path)
    outputs = yaml.safe_load(path.read_text())["routes"]["news"]["outputs"]
    assert (outputs["web"]["ladder"], outputs["cdn"]["ladder"]) == (["low", "sd"], [])
    set_secret_variables(path, monkeypatch)
    wipe()

    run("import_routes", str(path))

    assert dump_database() == before
    with CaptureQueriesContext(connection) as queries:
        assert run("import_routes", str(path))[0].startswith("0 changed")
    assert writes(queries) == [], "an unchanged ladder writes nothing"


def test_an_edited_ladder_is_reported_and_restarts_its_route(ladder: Output, tmp_path: Path) -> None:
    path = export_file(tmp_path)
    edit(path, lambda d: d["routes"]["news"]["outputs"]["web"].update(ladder=["sd"]))
    version = Route.objects.get(name="news").config_version

    out, _ = run("import_routes", str(path))

    assert out.splitlines()[0] == 'updated route "news" / output "web": ladder ["low", "sd"] -> ["sd"]'
    assert [p.name for p in Output.objects.get(pk=ladder.pk).ladder.all()] == ["sd"]
    assert Route.objects.get(name="news").config_version > version
