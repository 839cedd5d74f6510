"""Writing every route, with its inputs, outputs and the transcode profiles, as one document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from routes.config_io.schema import (
    ENDPOINT_KINDS,
    FIELDS,
    FORMAT_VERSION,
    SECRET_FIELDS,
    SecretRef,
    disambiguate,
    file_value,
    secret_variable,
)
from routes.models import Route, TranscodeProfile


@dataclass
class Export:
    document: dict[str, Any]
    # The environment variables an import of this document needs, in file order.
    variables: list[str] = field(default_factory=list)


def _fields(obj: models.Model) -> dict[str, Any]:
    return {name: file_value(obj, name) for name in FIELDS[type(obj)]}


def export_document(include_secrets: bool = False) -> Export:
    """All routes and profiles, sorted by name so that an unchanged setup exports byte for byte the same."""
    refs: dict[tuple[str, str, str, str], SecretRef] = {}
    profiles = {p.name: _fields(p) for p in sorted(TranscodeProfile.objects.all(), key=lambda p: p.name)}
    routes: dict[str, Any] = {}
    queryset = Route.objects.select_related("pinned_input", "pinned_node").prefetch_related(
        "inputs", "outputs__profile", "outputs__ladder"
    )
    for route in sorted(queryset, key=lambda r: r.name):
        entry = _fields(route)
        for kind in ENDPOINT_KINDS:
            endpoints = getattr(route, kind).all()
            if kind == "outputs":
                endpoints = sorted(endpoints, key=lambda o: o.name)
            else:
                endpoints = sorted(endpoints, key=lambda i: (i.priority, i.name))
            entry[kind] = {}
            for endpoint in endpoints:
                values = _fields(endpoint)
                for secret in SECRET_FIELDS:
                    if values[secret] and not include_secrets:
                        slot = (route.name, kind, endpoint.name, secret)
                        refs[slot] = values[secret] = SecretRef(secret_variable(*slot))
                entry[kind][endpoint.name] = values
        routes[route.name] = entry
    disambiguate(refs)
    document = {"version": FORMAT_VERSION, "profiles": profiles, "routes": routes}
    return Export(document, [ref.env for ref in refs.values()])
