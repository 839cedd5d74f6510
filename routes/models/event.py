from __future__ import annotations

from django.db import models
from django.utils import timezone

from routes.choices import EventKind


class RouteEvent(models.Model):
    """Something that happened to a route, kept for the event log, the UI and webhooks."""

    route = models.ForeignKey("routes.Route", on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["route", "-time"])]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.route} {self.kind}"
