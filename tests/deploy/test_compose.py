"""docker/compose.yaml (and its GPU override) read as Compose reads them, checked against what the
image and the settings expect. No container engine needed: the image itself is run by
test_image.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
GATEWAY_SERVICES = ("web", "worker", "beat")
# ${NAME}, ${NAME:-default}, ${NAME:?message}
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(:?[-?][^}]*)?\}")


def load(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("compose.yaml")


def variables_read_by_the_gateway() -> set[str]:
    """What settings.py reads (through vajracast.env) and what the entry point reads."""
    settings = (ROOT / "vajracast" / "settings.py").read_text(encoding="utf-8")
    entrypoint = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    return set(re.findall(r'env_\w+\(\s*"([A-Z_][A-Z0-9_]*)"', settings)) | set(
        re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", entrypoint)
    )


def test_services_and_restart_policies(compose: dict) -> None:
    assert set(compose["services"]) == {*GATEWAY_SERVICES, "postgres", "redis"}
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name


def test_each_gateway_service_runs_its_role_of_one_image(compose: dict) -> None:
    images = {compose["services"][name]["image"] for name in GATEWAY_SERVICES}
    assert len(images) == 1, images
    for name in GATEWAY_SERVICES:
        service = compose["services"][name]
        assert service["command"] == [name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_published_ports(compose: dict) -> None:
    services = compose["services"]
    assert services["web"]["ports"] == ["8080:8080"]
    assert set(services["worker"]["ports"]) == {"9000-9010:9000-9010/udp", "1935:1935"}
    # The node offers exactly the ports that are published.
    environment = services["worker"]["environment"]
    assert (environment["VAJRACAST_PORT_MIN"], environment["VAJRACAST_PORT_MAX"]) == ("9000", "9010")
    for name in ("beat", "postgres", "redis"):
        assert "ports" not in services[name], name


def test_postgres_16_and_redis_have_health_checks_that_compose_can_run(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].split(":")[1].startswith("16")
    test = postgres["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    assert "pg_isready" in " ".join(test[1:])
    if test[0] == "CMD-SHELL":
        assert len(test) == 2, "CMD-SHELL takes one shell command line"
    assert "vajracast" in " ".join(test[1:]), "pg_isready checks the gateway's user"
    assert postgres["environment"]["POSTGRES_USER"] == "vajracast"
    assert compose["services"]["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_dependencies_wait_for_health(compose: dict) -> None:
    services = compose["services"]
    for name in GATEWAY_SERVICES:
        depends = services[name]["depends_on"]
        assert depends, name
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no health check"
    # Web applies the migrations; the worker refuses to start before they are applied.
    assert "web" in services["worker"]["depends_on"]
    assert "postgres" in services["web"]["depends_on"]


def test_gateway_services_share_the_data_dir(compose: dict) -> None:
    # HLS segments and recordings are written by the worker and served by the web server.
    for name in GATEWAY_SERVICES:
        assert "data:/var/lib/vajracast" in compose["services"][name]["volumes"], name


def test_every_variable_set_is_one_the_gateway_reads(compose: dict) -> None:
    known = variables_read_by_the_gateway()
    for name in GATEWAY_SERVICES:
        unknown = set(compose["services"][name]["environment"]) - known
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_gpu_override_passes_dev_dri_with_the_video_and_render_groups() -> None:
    worker = load("compose.gpu.yaml")["services"]["worker"]
    assert worker["devices"] == ["/dev/dri:/dev/dri"]
    assert worker["build"]["target"] == "gpu"
    groups = " ".join(worker["group_add"])
    assert "VIDEO_GID" in groups
    assert "RENDER_GID" in groups
    assert "devices" not in load("compose.yaml")["services"]["worker"], "/dev/dri stays optional"


def test_env_example_defines_what_the_compose_files_interpolate() -> None:
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))
    used: set[str] = set()
    required: set[str] = set()
    for name in ("compose.yaml", "compose.gpu.yaml"):
        for variable, modifier in INTERPOLATION.findall((DOCKER / name).read_text(encoding="utf-8")):
            used.add(variable)
            if not modifier or modifier.startswith((":?", "?")):
                required.add(variable)
    assert required <= defined, f"required but not in .env.example: {sorted(required - defined)}"
    assert defined <= used, f"in .env.example but used nowhere: {sorted(defined - used)}"
