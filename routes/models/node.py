from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from routes.choices import NodeState
from routes.validators import port_validators


class Node(models.Model):
    """A worker host that runs pipelines. Workers register and heartbeat themselves."""

    name = models.CharField(max_length=100, unique=True)
    public_address = models.CharField(max_length=255, blank=True, help_text="Where encoders reach this node.")
    port_min = models.PositiveIntegerField(default=9000, validators=port_validators)
    port_max = models.PositiveIntegerField(default=9100, validators=port_validators)
    capabilities = models.JSONField(
        default=list, blank=True, help_text="Video encoders this node can run, best first (probed at worker start)."
    )
    encoder_problems = models.JSONField(
        default=dict, blank=True, help_text="Why each encoder this node lacks could not be used, by encoder."
    )
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=NodeState.choices, default=NodeState.OFFLINE)
    max_routes = models.PositiveIntegerField(default=64, help_text="How many routes this node runs at most.")

    # Three missed heartbeats (every 2 s) and the node is treated as gone: its routes move once their
    # leases expire. A node wrongly taken for dead loses nothing: its pipelines keep their leases.
    HEARTBEAT_TIMEOUT_S = 6

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue only this node's worker consumes."""
        return f"node.{self.name}"

    @property
    def alive(self) -> bool:
        return (
            self.state == NodeState.ONLINE
            and self.last_heartbeat is not None
            and (timezone.now() - self.last_heartbeat).total_seconds() < self.HEARTBEAT_TIMEOUT_S
        )

    @classmethod
    def alive_nodes(cls) -> models.QuerySet[Node]:
        since = timezone.now() - timedelta(seconds=cls.HEARTBEAT_TIMEOUT_S)
        return cls.objects.filter(state=NodeState.ONLINE, last_heartbeat__gte=since)

    def clean(self) -> None:
        if self.port_min and self.port_max and self.port_min > self.port_max:
            raise ValidationError({"port_max": "The port range ends before it starts: port_max < port_min."})
