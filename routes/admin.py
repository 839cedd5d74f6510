from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from routes import control
from routes.choices import EventKind
from routes.models import ApiKey, Input, Node, Output, Route, RouteEvent, TranscodeProfile, Webhook, WebhookDelivery
from routes.models.endpoints import ladder_errors
from routes.models.webhook import DEFAULT_EVENT_KINDS, DeliveryState, new_secret, send_soon
from routes.placement import describe_encoders

SECRET_FIELDS = ("passphrase", "stream_key")


class EndpointForm(forms.ModelForm):
    """Secrets are never sent back to the browser: blank keeps the stored value, a tick clears it."""

    passphrase = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="SRT, 10 to 79 characters. Leave blank to keep the current one.",
    )
    stream_key = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="RTMP. Leave blank to keep the current one.",
    )
    clear_secrets = forms.BooleanField(required=False, label="Remove passphrase and stream key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored = {name: getattr(self.instance, name) for name in SECRET_FIELDS}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if cleaned.get("clear_secrets"):
                cleaned[name] = ""
            elif not cleaned.get(name):
                cleaned[name] = self._stored[name]
        return cleaned


class OutputForm(EndpointForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The ladder is saved after the output, so Output.clean() cannot see it: checked here, as the API does.
        if "protocol" in cleaned and "ladder" in cleaned:
            errors = ladder_errors(cleaned["protocol"], cleaned.get("profile"), list(cleaned["ladder"]))
            for field, message in errors.items():
                self.add_error(field, message)
        return cleaned


class InputInline(admin.StackedInline):
    model = Input
    form = EndpointForm
    extra = 0
    ordering = ["priority"]
    fields = (
        ("name", "priority", "protocol", "mode"),
        ("host", "port", "url"),
        ("interface", "source_address"),
        ("streamid", "latency_ms", "pbkeylen", "timeout_ms", "min_bitrate_kbps"),
        ("passphrase", "stream_key", "clear_secrets"),
    )


class OutputInline(admin.StackedInline):
    model = Output
    form = OutputForm
    extra = 0
    fields = (
        ("name", "protocol", "mode", "enabled"),
        ("host", "port", "url"),
        ("interface", "ttl"),
        ("streamid", "latency_ms", "pbkeylen", "profile", "ladder"),
        ("segment_s", "playlist_size", "rotate_s", "keep_files", "keep_hours"),
        ("passphrase", "stream_key", "clear_secrets"),
    )


class RouteEventInline(admin.TabularInline):
    model = RouteEvent
    fields = ("time", "kind", "message")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-time"]
    verbose_name_plural = "event log (latest first)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Start selected routes")
def start_routes(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Route]) -> None:
    changed = sum(control.start(route) for route in queryset)
    modeladmin.message_user(request, f"{changed} route(s) set to run.", messages.SUCCESS)


@admin.action(description="Stop selected routes")
def stop_routes(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Route]) -> None:
    changed = sum(control.stop(route) for route in queryset)
    modeladmin.message_user(request, f"{changed} route(s) stopped.", messages.SUCCESS)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "failover_mode", "failback", "updated")
    list_filter = ("enabled", "failover_mode")
    search_fields = ("name",)
    actions = [start_routes, stop_routes]
    inlines = [InputInline, OutputInline, RouteEventInline]
    readonly_fields = ("created", "updated", "node", "placement_problem")
    fields = (
        ("name", "enabled"),
        ("failover_mode", "failback", "holdoff_s", "input_timeout_ms", "slate"),
        ("pinned_input", "pinned_node"),
        ("node", "placement_problem"),
        ("created", "updated"),
    )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "pinned_input":
            route_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = Input.objects.filter(route_id=route_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_filter = ("protocol",)
    search_fields = ("name", "route__name")
    list_select_related = ("route",)


@admin.register(Input)
class InputAdmin(EndpointAdmin):
    list_display = ("name", "route", "priority", "protocol", "mode", "port")


@admin.register(Output)
class OutputAdmin(EndpointAdmin):
    form = OutputForm
    list_display = ("name", "route", "protocol", "mode", "port", "profile", "enabled")


@admin.register(TranscodeProfile)
class TranscodeProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "video_codec", "encoder", "width", "height", "fps", "video_bitrate_kbps")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "public_address", "encoders", "port_min", "port_max", "last_heartbeat")
    readonly_fields = ("capabilities", "encoder_problems", "last_heartbeat")

    @admin.display(description="encoders")
    def encoders(self, node: Node) -> str:
        return describe_encoders(node.capabilities)


@admin.register(RouteEvent)
class RouteEventAdmin(admin.ModelAdmin):
    list_display = ("time", "route", "kind", "message")
    list_filter = ("kind",)
    search_fields = ("route__name", "message")
    list_select_related = ("route",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "role", "created", "last_used", "revoked_at")
    list_filter = ("role",)
    readonly_fields = ("prefix", "created", "last_used")
    fields = ("user", "name", "role", "prefix", "created", "last_used", "revoked_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, plaintext = ApiKey.issue(obj.user, obj.role, obj.name)
        obj.pk = key.pk
        obj.refresh_from_db()
        messages.warning(request, f"New API key (copy it now, it is not shown again): {plaintext}")


class WebhookForm(forms.ModelForm):
    """The secret is never sent back to the browser; a generated one is shown once, after saving."""

    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current one; a new webhook left blank gets a generated one.",
    )
    regenerate_secret = forms.BooleanField(required=False, label="Generate a new secret")
    event_kinds = forms.MultipleChoiceField(
        choices=EventKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: " + ", ".join(DEFAULT_EVENT_KINDS) + ".",
    )

    class Meta:
        model = Webhook
        fields = ("name", "url", "route", "event_kinds", "enabled", "secret")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored = self.instance.secret
        self.generated_secret = ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("regenerate_secret") or not (cleaned.get("secret") or self._stored):
            cleaned["secret"] = self.generated_secret = new_secret()
        elif not cleaned.get("secret"):
            cleaned["secret"] = self._stored
        return cleaned


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ("name", "url", "route", "kinds", "enabled", "deliveries_link")
    list_filter = ("enabled", "route")
    search_fields = ("name", "url")
    list_select_related = ("route",)
    readonly_fields = ("created", "deliveries_link")
    fields = (
        ("name", "enabled"),
        "url",
        "route",
        "event_kinds",
        ("secret", "regenerate_secret"),
        ("created", "deliveries_link"),
    )

    @admin.display(description="events")
    def kinds(self, webhook: Webhook) -> str:
        return ", ".join(webhook.event_kinds) or "default set"

    @admin.display(description="deliveries")
    def deliveries_link(self, webhook: Webhook) -> str:
        if webhook.pk is None:
            return "-"
        url = reverse("admin:routes_webhookdelivery_changelist") + f"?webhook__id__exact={webhook.pk}"
        counts = {state: webhook.deliveries.filter(state=state).count() for state in DeliveryState.values}
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        return format_html('<a href="{}">{}</a>', url, summary)

    def save_model(self, request: HttpRequest, obj: Webhook, form: WebhookForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.generated_secret:
            messages.warning(
                request, f'Secret of webhook "{obj.name}" (copy it now, it is not shown again): {obj.secret}'
            )


@admin.action(description="Retry now")
def retry_deliveries(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
    retried = [delivery for delivery in queryset.exclude(state=DeliveryState.DELIVERED)]
    for delivery in retried:
        delivery.retry_now()
    send_soon([delivery.pk for delivery in retried])
    modeladmin.message_user(request, f"{len(retried)} delivery(ies) sent again.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "webhook", "kind", "route", "state", "attempts", "last_status", "last_error",
        "next_attempt_at", "delivered_at",
    )  # fmt: skip
    list_filter = ("state", "webhook")
    list_select_related = ("webhook", "event", "event__route")
    search_fields = ("webhook__name", "event__route__name", "last_error")
    actions = [retry_deliveries]

    @admin.display(description="event")
    def kind(self, delivery: WebhookDelivery) -> str:
        return delivery.event.kind

    @admin.display(description="route")
    def route(self, delivery: WebhookDelivery) -> str:
        return delivery.event.route.name

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
