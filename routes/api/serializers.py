from __future__ import annotations

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import Max
from django.urls import reverse
from rest_framework import serializers

from routes.choices import OutputProtocol
from routes.models import Input, Node, Output, Route, RouteEvent, TranscodeProfile, Webhook, WebhookDelivery
from routes.models.endpoints import ladder_errors
from routes.models.webhook import DEFAULT_EVENT_KINDS, new_secret
from routes.public import absolute_url, public_host


class ModelFieldValidator:
    def __init__(self, model_field: Any) -> None:
        self.model_field = model_field

    def __call__(self, value: Any) -> None:
        self.model_field.run_validators(value)


def storable_text(value: Any) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``), which are not text the database can store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise serializers.ValidationError(
                "This text contains an invalid character (a lone UTF-16 surrogate)."
            ) from None


def _explain_field_errors(field: serializers.Field) -> None:
    """Say which values a choice takes and which object an unknown id was meant to name."""
    if isinstance(field, serializers.ChoiceField):
        options = ", ".join(str(value) for value in field.choices)
        # Without echoing the value: it may be text that cannot even be encoded into the response.
        field.error_messages["invalid_choice"] = f"Not a valid choice; use one of: {options}."
    elif isinstance(field, serializers.PrimaryKeyRelatedField) and field.queryset is not None:
        what = field.queryset.model._meta.verbose_name
        field.error_messages["does_not_exist"] = f"There is no {what} with id {{pk_value}}."
        field.error_messages["incorrect_type"] = f"Give the {what}'s id as a number."


class ValidatedModelSerializer(serializers.ModelSerializer):
    """Runs the model's own validation, so the API and the admin give the same field messages."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        model_fields = {f.name: f for f in self.Meta.model._meta.concrete_fields}
        for name, field in fields.items():
            if isinstance(field, serializers.ManyRelatedField):
                _explain_field_errors(field.child_relation)
            model_field = model_fields.get(field.source or name)
            if model_field is None or field.read_only:
                continue
            # DRF re-creates min/max/length checks with generic wording and adds unique checks that say
            # "must make a unique set"; run the model field's own validators and messages instead. Keep
            # what the database cannot store (NUL bytes, lone surrogates) a 400 rather than a 500.
            kept = [v for v in field.validators if isinstance(v, ProhibitNullCharactersValidator)]
            if isinstance(field, serializers.CharField):
                kept.append(storable_text)
            field.validators = [*kept, ModelFieldValidator(model_field)]
            _explain_field_errors(field)
        return fields

    def get_validators(self) -> list:
        return []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        model = self.Meta.model
        instance = model.objects.get(pk=self.instance.pk) if self.instance is not None else model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        instance.full_clean()
        # clean() may fill in defaults (an SRT mode, the RTMP port); keep them.
        for field in instance._meta.concrete_fields:
            if field.name in self.fields and not field.primary_key:
                attrs[field.name] = getattr(instance, field.name)
        return attrs


class EndpointSerializer(ValidatedModelSerializer):
    """Secrets are write-only: an update that leaves them out keeps them; "" clears them."""

    # Secrets are taken exactly as typed: a trimmed space would make the encoder's handshake fail.
    passphrase = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, style={"input_type": "password"}
    )
    stream_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, style={"input_type": "password"}
    )
    has_passphrase = serializers.BooleanField(read_only=True)
    has_stream_key = serializers.BooleanField(read_only=True)

    secret_fields = ("passphrase", "stream_key")
    common_fields = (
        "id", "route", "name", "protocol", "mode", "host", "port", "url", "streamid",
        "passphrase", "has_passphrase", "pbkeylen", "latency_ms", "stream_key", "has_stream_key",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            for name in self.secret_fields:
                attrs.setdefault(name, getattr(self.instance, name))
        return super().validate(attrs)

    def _public_host(self) -> str:
        return public_host(self.context.get("request"))


class InputSerializer(EndpointSerializer):
    priority = serializers.IntegerField(
        required=False, min_value=0, help_text="Lower is preferred. Left out: after the route's last input."
    )
    encoder_url = serializers.SerializerMethodField(help_text="Where an encoder sends to, for listener inputs.")

    class Meta:
        model = Input
        fields = (
            *EndpointSerializer.common_fields, "interface", "source_address", "priority", "timeout_ms",
            "min_bitrate_kbps", "encoder_url",
        )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and attrs.get("priority") is None and attrs.get("route") is not None:
            last = Input.objects.filter(route=attrs["route"]).aggregate(last=Max("priority"))["last"]
            attrs["priority"] = 1 if last is None else last + 1
        return super().validate(attrs)

    def get_encoder_url(self, obj: Input) -> str | None:
        return obj.encoder_url(self._public_host())


class OutputSerializer(EndpointSerializer):
    player_url = serializers.SerializerMethodField(
        help_text="Where a player connects: SRT listener outputs, and HLS outputs' playlist."
    )
    ladder = serializers.PrimaryKeyRelatedField(
        many=True,
        required=False,
        queryset=TranscodeProfile.objects.all(),
        help_text="HLS only: ids of the profiles encoded beside the transcode profile, for adaptive bitrate.",
    )

    class Meta:
        model = Output
        fields = (
            *EndpointSerializer.common_fields, "interface", "profile", "ladder", "enabled", "ttl", "segment_s",
            "playlist_size", "rotate_s", "keep_files", "keep_hours", "player_url",
        )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A many-to-many relation is written after the row, so the model cannot check it: the
        # ladder is checked here against the output it will belong to.
        ladder = attrs.pop("ladder", None)
        attrs = super().validate(attrs)
        if ladder is None:
            ladder = list(self.instance.ladder.all()) if self.instance is not None else []
        else:
            attrs["ladder"] = ladder
        errors = ladder_errors(attrs["protocol"], attrs.get("profile"), ladder)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def get_player_url(self, obj: Output) -> str | None:
        if obj.protocol == OutputProtocol.HLS:
            return absolute_url(self.context.get("request"), reverse("hls-file", args=[obj.pk, "index.m3u8"]))
        return obj.player_url(self._public_host())


class RecordingSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes.")
    started = serializers.DateTimeField()
    modified = serializers.DateTimeField()
    duration_s = serializers.FloatField(help_text="From its start to its last write.")
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, recording: dict[str, Any]) -> str:
        path = reverse("output-recording", args=[self.context["output"].pk, recording["name"]])
        return absolute_url(self.context.get("request"), path)


class RouteSerializer(ValidatedModelSerializer):
    inputs = InputSerializer(many=True, read_only=True)
    outputs = OutputSerializer(many=True, read_only=True)

    class Meta:
        model = Route
        fields = (
            "id", "name", "enabled", "failover_mode", "failback", "holdoff_s", "input_timeout_ms", "slate",
            "pinned_input", "pinned_node", "node", "placement_problem", "created", "updated", "inputs", "outputs",
        )  # fmt: skip
        read_only_fields = ("pinned_input", "node", "placement_problem")


class TranscodeProfileSerializer(ValidatedModelSerializer):
    class Meta:
        model = TranscodeProfile
        fields = "__all__"


class NodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Node
        fields = "__all__"


class RouteEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RouteEvent
        fields = ("id", "route", "time", "kind", "message", "data")


class WebhookSerializer(ValidatedModelSerializer):
    """The secret is shown once, in the response that generated it; otherwise it is write-only."""

    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text=(
            'Signs each request. Left out on creation, or "" on an update: a new one is generated and '
            "returned in that response only. Left out on an update: kept."
        ),
    )
    event_kinds = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Event kinds to send; empty: " + ", ".join(DEFAULT_EVENT_KINDS) + ".",
    )

    class Meta:
        model = Webhook
        fields = ("id", "name", "url", "secret", "event_kinds", "route", "enabled", "created")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("secret") == "" or (self.instance is None and not attrs.get("secret")):
            attrs["secret"] = self._generated_secret = new_secret()
        return super().validate(attrs)

    def to_representation(self, instance: Webhook) -> dict[str, Any]:
        data = super().to_representation(instance)
        generated = getattr(self, "_generated_secret", None)
        if generated is not None:
            data["secret"] = generated
        return data


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = (
            "id", "webhook", "event", "state", "attempts", "last_status", "last_error", "next_attempt_at",
            "delivered_at", "created_at", "payload",
        )  # fmt: skip


class SwitchSerializer(serializers.Serializer):
    input = serializers.IntegerField(
        allow_null=True, help_text="An input of this route to pin, or null to return to automatic selection."
    )

    def validate_input(self, value: int | None) -> int | None:
        route: Route = self.context["route"]
        if value is not None and not route.inputs.filter(pk=value).exists():
            raise serializers.ValidationError(f'Route "{route.name}" has no input with id {value}.')
        return value


class StatusEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    protocol = serializers.CharField()
    state = serializers.CharField()
    reason = serializers.CharField()
    stats = serializers.DictField()


class TranscodeStatusSerializer(serializers.Serializer):
    encoder = serializers.CharField(help_text='The encoder in use, e.g. "libx264 (software)".')
    fps = serializers.FloatField(help_text="Frames encoded per second.")
    speed = serializers.FloatField(help_text="Encoding speed relative to realtime; below 1 it falls behind.")
    frames = serializers.IntegerField()
    dropped_frames = serializers.IntegerField()
    duplicated_frames = serializers.IntegerField()
    decode_errors = serializers.IntegerField()
    behind = serializers.BooleanField(help_text="Whether the transcoder cannot keep up with realtime.")
    behind_reason = serializers.CharField()


class StatusOutputSerializer(StatusEndpointSerializer):
    transcode = TranscodeStatusSerializer(
        allow_null=True, help_text="A transcoding output's encoder and its figures; null when it passes through."
    )


class StatusInputSerializer(StatusEndpointSerializer):
    priority = serializers.IntegerField()
    active = serializers.BooleanField()
    healthy = serializers.BooleanField()
    health_reason = serializers.CharField(help_text="Why the input counts as down, when it does.")


class RouteStatusSerializer(serializers.Serializer):
    """Documents the shape of ``routes/{id}/status/``; the data comes from routes.status."""

    route = serializers.IntegerField()
    enabled = serializers.BooleanField()
    state = serializers.CharField()
    reason = serializers.CharField(help_text="Why the route is not running as desired, when it is not.")
    node = serializers.CharField(allow_null=True)
    active_input = serializers.IntegerField(allow_null=True)
    active_priority = serializers.IntegerField(
        allow_null=True, help_text="1 for the main input; one past the last input while on the slate."
    )
    on_slate = serializers.BooleanField()
    pinned_input = serializers.IntegerField(allow_null=True)
    switches = serializers.IntegerField(help_text="Input switches since the pipeline started.")
    last_switch = serializers.DictField(allow_null=True)
    inputs = StatusInputSerializer(many=True)
    outputs = StatusOutputSerializer(many=True)
    updated_at = serializers.DateTimeField(allow_null=True)
