from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port


def public_host(request: HttpRequest | None) -> str:
    """The address encoders and players should use: configured, or the one the operator browsed to."""
    if settings.VAJRACAST_PUBLIC_HOST:
        return settings.VAJRACAST_PUBLIC_HOST
    if request is None:
        return "localhost"
    host, _port = split_domain_port(request.get_host())
    return host.strip("[]") or "localhost"


def absolute_url(request: HttpRequest | None, path: str) -> str:
    """A web address a player outside the browser can open: absolute when the request says where
    the operator browsed to, else the bare path."""
    return request.build_absolute_uri(path) if request is not None else path
