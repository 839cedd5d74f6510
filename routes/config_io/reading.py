"""Reading a routes document: its shape and value types are checked before the database is touched."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models

from routes.config_io.schema import ENDPOINT_KINDS, FIELDS, FORMAT_VERSION, PROFILE_FIELDS, ROUTE_FIELDS, label

ROUTE_KEYS = (*ROUTE_FIELDS, *ENDPOINT_KINDS)


class ConfigError(Exception):
    """What is wrong with the document; each line names the object and the field."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


@dataclass
class RouteSpec:
    """A route's own settings as given, and its inputs' and outputs' by kind and name."""

    values: dict[str, Any]
    endpoints: dict[str, dict[str, dict[str, Any]]]


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _settings(value: Any, what: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError([f"{what}: expected its settings as a mapping (key: value), got {show(str(value))}."])
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f' Did you mean "{close[0]}"?' if close else f" The settings are: {', '.join(allowed)}."
            raise ConfigError([f'{what}: unknown setting "{key}".{hint}'])
    return value


def _named(value: Any, what: str) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ConfigError([f"{what}: expected a mapping from names to settings."])
    for name in value:
        if not isinstance(name, str):
            raise ConfigError([f"{what}: the name {name!r} must be text; put it in quotes."])
    return list(value.items())


def read_document(document: Any) -> tuple[dict[str, dict[str, Any]], dict[str, RouteSpec]]:
    """Check the document's shape before touching the database."""
    if document is None:
        raise ConfigError(["The file is empty; it should hold profiles: and routes:."])
    top = _settings(document, "The file", ("version", "profiles", "routes"))
    version = top.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ConfigError([f"version: this file is format {show(version)}; only {FORMAT_VERSION} can be read."])
    profiles = {
        name: _settings(values, f'profile "{name}"', PROFILE_FIELDS)
        for name, values in _named(top.get("profiles"), "profiles")
    }
    routes = {}
    for name, values in _named(top.get("routes"), "routes"):
        settings = _settings(values, label(name), ROUTE_KEYS)
        endpoints = {
            kind: {
                endpoint: _settings(spec, label(name, kind, endpoint), FIELDS[model])
                for endpoint, spec in _named(settings.get(kind), f"{label(name)} / {kind}")
            }
            for kind, model in ENDPOINT_KINDS.items()
        }
        routes[name] = RouteSpec({k: v for k, v in settings.items() if k in ROUTE_FIELDS}, endpoints)
    return profiles, routes


def typed(model_field: models.Field, value: Any, what: str) -> Any:
    """Refuse what the model would silently coerce: a list turned into text, 9000.5 into 9000."""
    if model_field.many_to_many:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError([f"{what} / {model_field.name}: expected a list of names, got {show(str(value))}."])
        return value
    if value is None:
        if model_field.null:
            return None
        if isinstance(model_field, models.CharField):
            return ""  # an empty YAML value means no text
        raise ConfigError([f"{what} / {model_field.name}: needs a value."])
    if isinstance(model_field, models.BooleanField):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(model_field, models.IntegerField):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(model_field, models.CharField | models.ForeignKey):
        ok, expected = isinstance(value, str), "text (in quotes if YAML reads it as a number or a date)"
    else:
        ok, expected = True, ""
    if not ok:
        raise ConfigError([f"{what} / {model_field.name}: expected {expected}, got {show(str(value))}."])
    return value
