"""Typed readers for settings that come from the environment.

Every reader fails loudly with the variable's name and the offending value, so a typo in a
Compose file or a Helm value stops the process at start instead of running with a silent default.
Each reader also accepts ``NAME_FILE`` (a path whose content is the value), the way Docker and
Kubernetes hand over secrets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value is not None and file_name is not None:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if file_name is not None:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}.") from exc
    return value


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/yes/no/on/off/1/0, got {value!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {number}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_seconds(name: str, default: list[float], *, maximum: float = 86400) -> list[float]:
    """A comma-separated list of durations in seconds, e.g. ``5,30,120``."""
    value = env_str(name)
    if value is None:
        return list(default)
    try:
        numbers = [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be seconds separated by commas (5,30,120), got {value!r}.") from None
    if any(not 0 <= number <= maximum for number in numbers):
        raise ImproperlyConfigured(f"{name} must hold durations from 0 to {maximum:g} s, got {value!r}.")
    return numbers


def env_path(name: str, default: Path) -> Path:
    value = env_str(name)
    return Path(value).expanduser().resolve() if value is not None else default


def env_token(name: str, *, min_length: int = 16) -> str | None:
    """A shared secret sent in a header: long enough not to be guessed, and nothing a header
    would mangle (no whitespace, printable ASCII only)."""
    value = env_str(name)
    if value is None:
        return None
    if len(value) < min_length:
        raise ImproperlyConfigured(f"{name} must be at least {min_length} characters long, got {len(value)}.")
    if not all("!" <= character <= "~" for character in value):
        raise ImproperlyConfigured(f"{name} may only hold printable ASCII characters without spaces.")
    return value


def database_from_url(url: str, *, name: str = "DATABASE_URL") -> dict[str, Any]:
    """Django's DATABASES entry for a ``postgres://`` or ``sqlite:///`` URL."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user:pass@host:5432/vajracast.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port.") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.db or sqlite:///relative.db
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ImproperlyConfigured(f"{name} must look like sqlite:///path/to/file.sqlite3.")
        return sqlite_database(Path(path))
    raise ImproperlyConfigured(
        f"{name} scheme {parts.scheme or '(none)'!r} is not supported: use postgres:// or sqlite:///."
    )


def sqlite_database(path: Path) -> dict[str, Any]:
    # The web process and the worker write at the same time: WAL plus IMMEDIATE transactions and a
    # generous busy timeout keep SQLite from answering "database is locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
