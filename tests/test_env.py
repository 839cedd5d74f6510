"""Settings from the environment fail loudly on bad values and read secrets from *_FILE."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from vajracast.env import database_from_url, env_bool, env_int, env_list, env_str

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("Yes", True), ("on", True), ("0", False), ("OFF", False)])
def test_bool_reads_common_spellings(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("DEBUG", raw)
    assert env_bool("DEBUG", not expected) is expected


def test_bad_bool_names_the_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG must be one of .* got 'maybe'"):
        env_bool("DEBUG", False)


def test_int_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAJRACAST_HEALTH_TIMEOUT_S", "0")
    with pytest.raises(ImproperlyConfigured, match="between 1 and 30, got 0"):
        env_int("VAJRACAST_HEALTH_TIMEOUT_S", 2, minimum=1, maximum=30)
    monkeypatch.setenv("VAJRACAST_HEALTH_TIMEOUT_S", "two")
    with pytest.raises(ImproperlyConfigured, match="whole number, got 'two'"):
        env_int("VAJRACAST_HEALTH_TIMEOUT_S", 2)


def test_unset_and_empty_take_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    assert env_list("ALLOWED_HOSTS", ["localhost"]) == ["localhost"]
    monkeypatch.setenv("ALLOWED_HOSTS", "")
    assert env_list("ALLOWED_HOSTS", ["localhost"]) == ["localhost"]
    monkeypatch.setenv("ALLOWED_HOSTS", " gw.example.net, 10.0.0.5 ,")
    assert env_list("ALLOWED_HOSTS", []) == ["gw.example.net", "10.0.0.5"]


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret))
    assert env_str("SECRET_KEY") == "s3cret-value"


def test_secret_file_missing_or_doubly_set_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ImproperlyConfigured, match=r"SECRET_KEY_FILE=.* cannot be read"):
        env_str("SECRET_KEY")
    monkeypatch.setenv("SECRET_KEY", "x")
    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY or SECRET_KEY_FILE, not both"):
        env_str("SECRET_KEY")


def test_postgres_url() -> None:
    db = database_from_url("postgres://vc:p%40ss@db.internal:6543/vajracast?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "vc",
        "p@ss",
        "db.internal",
        "6543",
        "vajracast",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_sqlite_url(tmp_path: Path) -> None:
    db = database_from_url(f"sqlite:///{tmp_path}/gw.sqlite3")
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == f"{tmp_path}/gw.sqlite3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/vc", "scheme 'mysql' is not supported"),
        ("postgres://localhost", "must name a database"),
        ("postgres://localhost:notaport/vc", "invalid port"),
        ("sqlite://", "must look like sqlite:///"),
        ("localhost/vc", "scheme '(none)' is not supported"),
    ],
)
def test_bad_database_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        database_from_url(url)


def test_bad_setting_stops_the_process_at_start(tmp_path: Path) -> None:
    """A typo in a deployment file must stop the gateway at start, not run it with a silent default."""
    env = {**os.environ, "DEBUG": "ture", "VAJRACAST_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr
