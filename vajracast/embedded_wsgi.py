"""The WSGI application for the single-machine gateway (``manage.py serve``) and the container
image's web role: the regular one, plus the collected static files (admin CSS and scripts) from
STATIC_ROOT.

A deployment behind a reverse proxy that serves ``/static/`` itself can use ``vajracast.wsgi``;
on one machine, or in Compose or Kubernetes with nothing in front that has the files, gunicorn has
to hand them out itself.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.http import HttpRequest, HttpResponseBase
from django.views import static

from vajracast.wsgi import application as django_application


class CollectedStaticFilesHandler(StaticFilesHandler):
    """Serves STATIC_URL from STATIC_ROOT (what collectstatic wrote), whatever DEBUG says.

    Django's own handler looks files up through the finders, which is meant for development;
    reading the collected copy serves exactly what was collected at start.
    """

    def serve(self, request: HttpRequest) -> HttpResponseBase:
        return static.serve(request, self.file_path(request.path), document_root=settings.STATIC_ROOT)


application = CollectedStaticFilesHandler(django_application)
