from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from routes.choices import FailoverMode, SlateMode
from routes.validators import holdoff_validators, no_control_characters, timeout_validators


class Route(models.Model):
    """One stream path: inputs in priority order, the active one sent to every output."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[no_control_characters],
        error_messages={"unique": "Another route already has this name; route names must be unique."},
    )
    enabled = models.BooleanField(default=False, help_text="Desired state: the route should be running.")
    failover_mode = models.CharField(
        max_length=10,
        choices=FailoverMode.choices,
        default=FailoverMode.AUTO,
        help_text="auto: switch to the best healthy input by itself; manual: only an operator switches.",
    )
    failback = models.BooleanField(
        default=False, help_text="Return to a preferred input once it has stayed healthy for the hold-off."
    )
    holdoff_s = models.PositiveIntegerField(
        "failback hold-off (s)",
        default=10,
        validators=holdoff_validators,
        help_text="How long a preferred input must stay healthy before the route fails back to it.",
    )
    input_timeout_ms = models.PositiveIntegerField(
        "default input timeout (ms)",
        default=300,
        validators=timeout_validators,
        help_text="An input that sends nothing for this long is down, unless it sets its own timeout.",
    )
    slate = models.CharField(
        max_length=10,
        choices=SlateMode.choices,
        default=SlateMode.NONE,
        help_text="What the outputs carry when every input is down. A file input at the lowest priority "
        "is another way to play a slate.",
    )
    pinned_input = models.ForeignKey(
        "routes.Input",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Manual override: this input stays active until released, whatever its health.",
    )
    pinned_node = models.ForeignKey(
        "routes.Node",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Run only on this node (encoders keep one fixed address). Empty: placed automatically.",
    )
    node = models.ForeignKey(
        "routes.Node",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="routes",
        editable=False,
        help_text="Where the route is placed now.",
    )
    placement_problem = models.CharField(max_length=1000, blank=True, editable=False)
    config_version = models.PositiveIntegerField(
        default=1, editable=False, help_text="Grows with every change a running pipeline must pick up."
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        # A full save may change what the pipeline runs; partial saves (desired state, pin,
        # placement) are read live and need no restart.
        if self.pk is not None and kwargs.get("update_fields") is None:
            self.config_version += 1
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        if self.pinned_input is not None and self.pinned_input.route_id != self.pk:
            raise ValidationError({"pinned_input": "The pinned input must be one of this route's inputs."})

    def pin_input(self, input_id: int | None) -> None:
        """Manual override: keep this input active until released with None."""
        self.pinned_input_id = input_id
        self.save(update_fields=["pinned_input", "updated"])

    def set_enabled(self, enabled: bool) -> bool:
        """Change the desired state; returns whether it changed."""
        if self.enabled == enabled:
            return False
        self.enabled = enabled
        self.save(update_fields=["enabled", "updated"])
        return True
