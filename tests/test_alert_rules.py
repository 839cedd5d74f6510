"""The shipped Prometheus alert rules, checked by Prometheus' own promtool: they load, and each alert
fires on the series that should raise it and on no other (monitoring/alerts_test.yaml).

That the metric names in the rules exist in a real scrape is checked against a live route in
tests/orchestration/test_metrics_live.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"


def promtool() -> str:
    # The test command puts it into the virtualenv, beside the interpreter.
    beside = Path(sys.executable).parent / "promtool"
    found = str(beside) if beside.exists() else shutil.which("promtool")
    assert found, "promtool is missing: the test command (bin/test) installs it into the virtualenv"
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_alert_rules_load_in_prometheus() -> None:
    result = run_promtool("check", "rules", str(MONITORING / "alerts.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_alert_fires_on_what_it_is_for_and_on_nothing_else() -> None:
    result = run_promtool("test", "rules", str(MONITORING / "alerts_test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_tests_cover_every_alert() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    tests = yaml.safe_load((MONITORING / "alerts_test.yaml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert alerts
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    untested = alerts - tested
    assert not untested, f"alerts without a promtool test: {sorted(untested)}"
