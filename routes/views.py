"""The operator's web UI: server-rendered pages over the same state the API serves.

Each page renders its live part from one partial template; a small script (``live.js``) asks
for that partial again about once a second, as JSON next to the chart samples, and patches the
page in place. Polling, not server-sent events: gunicorn serves each request on one of a fixed
number of blocking workers (two processes of four threads in the embedded gateway), and a stream
would hold one for as long as a page stays open, so a few open tabs would starve the API and the
pages themselves. A poll holds a worker for a few milliseconds and passes through any proxy.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from routes import control
from routes.api.serializers import SwitchSerializer
from routes.choices import OutputProtocol, Role
from routes.media_files import media_response
from routes.models import Output, Route
from routes.public import public_host
from routes.roles import allows, role_of_user
from routes.runtime import HISTORY_WINDOW_S, route_history
from routes.status import statuses

UI_ACTIONS = {"start": control.start, "stop": control.stop}
EVENTS_SHOWN = 50
LIVE_SCRIPT = Path(__file__).with_name("assets") / "live.js"


def _viewer_role(request: HttpRequest) -> Role:
    role = role_of_user(request.user)
    if not allows(role, Role.VIEWER):
        raise PermissionDenied("Your account has no role yet; an admin can make you a viewer, operator or admin.")
    return role


def _active_input(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((i for i in status["inputs"] if i["active"]), None)


def _list_context(request: HttpRequest) -> dict[str, Any]:
    role = _viewer_role(request)
    routes = list(Route.objects.prefetch_related("inputs", "outputs"))
    status = statuses(routes)
    rows = [(route, status[route.pk], _active_input(status[route.pk])) for route in routes]
    return {"rows": rows, "can_operate": allows(role, Role.OPERATOR)}


@login_required
def route_list(request: HttpRequest) -> HttpResponse:
    return render(request, "routes/list.html", _list_context(request))


@login_required
@require_GET
@never_cache
def route_list_live(request: HttpRequest) -> JsonResponse:
    """The list's live part, as the list page renders it, for its poller."""
    context = _list_context(request)
    return JsonResponse(
        {
            "html": render_to_string("routes/_list_live.html", context, request=request),
            "routes": [status for _route, status, _active in context["rows"]],
        }
    )


def _detail_context(request: HttpRequest, pk: int) -> dict[str, Any]:
    role = _viewer_role(request)
    route = get_object_or_404(Route.objects.prefetch_related("inputs", "outputs__profile", "outputs__ladder"), pk=pk)
    host = public_host(request)
    status = statuses([route])[route.pk]
    inputs = [(i, i.encoder_url(host), s) for i, s in zip(route.inputs.all(), status["inputs"], strict=True)]
    outputs = [(o, o.player_url(host), s) for o, s in zip(route.outputs.all(), status["outputs"], strict=True)]
    recordings = [(o, o.recordings()) for o in route.outputs.all() if o.protocol == OutputProtocol.FILE]
    names = {i.pk: i.name for i in route.inputs.all()}
    return {
        "route": route,
        "status": status,
        "active": _active_input(status),
        "inputs": inputs,
        "outputs": outputs,
        "pinned": names.get(status["pinned_input"]),
        "last_switch": _last_switch(status["last_switch"], names),
        "recordings": recordings,
        "events": route.events.all()[:EVENTS_SHOWN],
        "can_operate": allows(role, Role.OPERATOR),
        "history_minutes": HISTORY_WINDOW_S // 60,
    }


@login_required
def route_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "routes/detail.html", _detail_context(request, pk))


@login_required
@require_GET
@never_cache
def route_detail_live(request: HttpRequest, pk: int) -> JsonResponse:
    """The detail page's live part, the status it was rendered from (the API's ``status/``), and
    the chart samples newer than ``since`` (all of the last minutes without it)."""
    context = _detail_context(request, pk)
    try:
        since: float | None = float(request.GET["since"])
    except (KeyError, ValueError):
        since = None
    return JsonResponse(
        {
            "html": render_to_string("routes/_detail_live.html", context, request=request),
            "status": context["status"],
            "samples": route_history(pk, since),
            "window_s": HISTORY_WINDOW_S,
            "now": time.time(),
        }
    )


@cache
def _live_script() -> tuple[bytes, str]:
    body = LIVE_SCRIPT.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:16]}"'


@require_GET
def live_script(request: HttpRequest) -> HttpResponse:
    """The pages' poller, served here rather than as a static file: ``vajracast.wsgi`` serves no
    static files (a proxy in front may or may not), and the live pages must work either way.

    Revalidated on every load (a 304 costs nothing), so an upgraded gateway never runs an old copy.
    """
    body, etag = _live_script()
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


def _last_switch(reported: dict[str, Any] | None, names: dict[int, str]) -> dict[str, Any] | None:
    """The status's last switch with input names instead of ids, for the page."""
    if not reported:
        return None

    def name(endpoint: Any) -> str:
        if endpoint == "slate":
            return "the slate"
        return names.get(endpoint, f"input {endpoint} (since deleted)")

    at = reported.get("at")
    return {
        "from": name(reported.get("from")),
        "to": name(reported.get("to")),
        "reason": reported.get("reason", ""),
        "planned": reported.get("planned", False),
        "at": datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else None,
    }


@login_required
@require_POST
def route_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in UI_ACTIONS:
        raise PermissionDenied(f"Unknown action {action!r}.")
    if not allows(role_of_user(request.user), Role.OPERATOR):
        raise PermissionDenied("Starting and stopping routes needs the operator role.")
    route = get_object_or_404(Route, pk=pk)
    UI_ACTIONS[action](route)
    verb = "set to run" if route.enabled else "stopped"
    messages.success(request, f'Route "{route.name}" {verb}.')
    return HttpResponseRedirect(reverse("ui-route-detail", args=[route.pk]))


@login_required
@require_POST
def route_switch(request: HttpRequest, pk: int) -> HttpResponse:
    """Pin the posted input (manual override), or release the pin when the posted input is empty.

    The same validation and the same action as the API's ``switch``.
    """
    if not allows(role_of_user(request.user), Role.OPERATOR):
        raise PermissionDenied("Switching inputs needs the operator role.")
    route = get_object_or_404(Route, pk=pk)
    detail = HttpResponseRedirect(reverse("ui-route-detail", args=[route.pk]))
    posted = request.POST.get("input", "").strip()
    body = SwitchSerializer(data={"input": posted or None}, context={"route": route})
    if not body.is_valid():
        messages.error(request, f"Not switched: {' '.join(str(e) for e in body.errors['input'])}")
        return detail
    input_id = body.validated_data["input"]
    released = route.pinned_input_id
    control.switch(route, input_id)
    if input_id is None:
        if released is None:
            messages.info(request, f'Route "{route.name}": no input was pinned; selection stays automatic.')
        else:
            messages.success(
                request,
                f'Route "{route.name}": pin released; the best healthy input goes on air automatically.',
            )
        return detail
    chosen = route.inputs.get(pk=input_id)
    when = "" if route.enabled else " once the route runs"
    messages.success(
        request, f'Route "{route.name}": switching to "{chosen.name}"{when}; it stays on air until released.'
    )
    return detail


@login_required
def hls_player(request: HttpRequest, pk: int) -> HttpResponse:
    _viewer_role(request)
    output = get_object_or_404(Output.objects.select_related("route"), pk=pk, protocol=OutputProtocol.HLS)
    playlist = request.build_absolute_uri(reverse("hls-file", args=[output.pk, "index.m3u8"]))
    return render(request, "routes/player.html", {"output": output, "playlist": playlist})


@login_required
def recording_download(request: HttpRequest, pk: int, name: str) -> FileResponse:
    _viewer_role(request)
    output = get_object_or_404(Output, pk=pk, protocol=OutputProtocol.FILE)
    return media_response(output, name, download=True)
