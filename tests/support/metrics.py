"""Reading a /metrics page, and the metric names the shipped dashboard and alert rules use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yaml"
# A metric name in PromQL: the gateway's own and the recording rules' (with colons).
METRIC_NAME = re.compile(r"\bvajracast[a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One /metrics page: its families (with their types) and samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: list[Sample] = []
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            self.samples += [Sample(s.name, dict(s.labels), s.value) for s in family.samples]

    def names(self) -> set[str]:
        """Family names, and the names samples carry (``*_total`` for a counter)."""
        return set(self.types) | {sample.name for sample in self.samples}

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples, expected one:\n{found}"
        return found[0].value

    def of_routes(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample about a route, its inputs and outputs, keyed by name and labels: what one
        publication of the routes' state determines."""
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in self.samples if "route_id" in s.labels}


def _dashboard_expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_expressions(item)


def load_alerts(path: Path = ALERTS) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def recorded_names() -> set[str]:
    return {rule["record"] for group in load_alerts()["groups"] for rule in group["rules"] if "record" in rule}


def monitoring_metric_names() -> dict[str, set[str]]:
    """Every metric name each shipped file queries (recording rules' own names left out)."""
    rules = [rule for group in load_alerts()["groups"] for rule in group["rules"]]
    texts = {
        "alerts.yaml": [rule["expr"] for rule in rules],
        "grafana-dashboard.json": list(_dashboard_expressions(load_dashboard())),
    }
    recorded = recorded_names()
    return {file: {n for text in exprs for n in METRIC_NAME.findall(text)} - recorded for file, exprs in texts.items()}
