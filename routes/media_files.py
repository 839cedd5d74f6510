"""Serving what HLS and recording outputs write: live playlists and segments, recording downloads.

HLS is served without login, like an SRT listener output: players and CDN origins fetch it by URL.
Recordings are for signed-in viewers (the UI) and API keys (the API) only.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest

from routes.choices import OutputProtocol
from routes.models import Output

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}


def media_response(output: Output, name: str, *, download: bool = False, variant: str | None = None) -> FileResponse:
    path = output.media_file(name, variant)
    if path is None:
        where = name if variant is None else f"{variant}/{name}"
        raise Http404(f'Output "{output.name}" has no file {where!r}.')
    response = FileResponse(path.open("rb"), as_attachment=download, content_type=CONTENT_TYPES[path.suffix])
    if path.suffix == ".m3u8":
        # A live playlist changes every segment: a cached copy would stall players.
        response["Cache-Control"] = "no-cache"
    return response


def hls_file(request: HttpRequest, pk: int, name: str, variant: str | None = None) -> FileResponse:
    """A live playlist or segment; with ``variant``, one rendition's, from the folder the master
    playlist (``index.m3u8``) points players to."""
    output = Output.objects.filter(pk=pk, protocol=OutputProtocol.HLS, enabled=True).first()
    if output is None:
        raise Http404("No such HLS output.")
    return media_response(output, name, variant=variant)
