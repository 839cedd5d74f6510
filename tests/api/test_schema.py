"""The OpenAPI schema generates without warnings and documents what the API really does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, str(MANAGE), "spectacular", "--validate", "--fail-on-warn", "--file", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    return yaml.safe_load(target.read_text(encoding="utf-8"))


def test_every_endpoint_is_documented(schema: dict[str, Any]) -> None:
    paths = set(schema["paths"])

    for collection in ("routes", "inputs", "outputs", "profiles", "nodes", "events", "webhooks"):
        assert f"/api/v1/{collection}/" in paths
        assert f"/api/v1/{collection}/{{id}}/" in paths
    for action in ("start", "stop", "switch", "status"):
        assert f"/api/v1/routes/{{id}}/{action}/" in paths
    assert "post" not in schema["paths"]["/api/v1/nodes/"]
    assert "post" not in schema["paths"]["/api/v1/events/"]
    assert "/api/v1/webhooks/{id}/deliveries/" in paths


def test_bearer_keys_are_documented(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]

    assert {"type": "http", "scheme": "bearer"}.items() <= next(
        s for s in schemes.values() if s.get("scheme") == "bearer"
    ).items()


@pytest.mark.parametrize("component", ["Input", "Output"])
def test_secrets_are_write_only_in_the_schema(schema: dict[str, Any], component: str) -> None:
    components = schema["components"]["schemas"]

    shown = components[component]["properties"]
    accepted = components[f"{component}Request"]["properties"]
    assert {"passphrase", "stream_key"}.isdisjoint(shown)
    assert {"has_passphrase", "has_stream_key"} <= set(shown)
    assert {"passphrase", "stream_key"} <= set(accepted)


def test_status_shape_is_documented(schema: dict[str, Any]) -> None:
    status = schema["paths"]["/api/v1/routes/{id}/status/"]["get"]["responses"]["200"]
    ref = status["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    assert {"state", "active_input", "inputs", "outputs"} <= set(schema["components"]["schemas"][ref]["properties"])


def test_failover_settings_and_state_are_documented(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]

    assert {"active_priority", "on_slate", "switches", "last_switch"} <= set(components["RouteStatus"]["properties"])
    assert {"healthy", "health_reason"} <= set(components["StatusInput"]["properties"])
    slate = components["Route"]["properties"]["slate"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]
    assert components[slate]["enum"] == ["none", "pattern"]
    floor = components["Input"]["properties"]["min_bitrate_kbps"]
    assert (floor["minimum"], floor["nullable"]) == (1, True)
