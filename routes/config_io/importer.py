"""Creating, updating and (with prune) deleting routes, inputs, outputs and profiles from a document.

Objects are matched by name, every one passes the model's full_clean, and only objects whose
settings differ are written: saving an endpoint restarts its route's pipeline, so an unchanged
file must not touch anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.db.models import Max

from routes import control
from routes.config_io.reading import ConfigError, RouteSpec, read_document, show, typed
from routes.config_io.schema import ENDPOINT_KINDS, FIELDS, SECRET_FIELDS, file_value, label
from routes.models import Input, Output, Route, TranscodeProfile
from routes.models.endpoints import ladder_errors

# Applied once the route's inputs exist, through the same operator actions as the API and the UI.
DESIRED_STATE = ("enabled", "pinned_input")
_KEEP = object()  # a secret whose variable is unset and whose object already has one


@dataclass(frozen=True)
class Change:
    action: str  # created, updated or deleted
    what: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.action} {self.what}"
        return f"{text}: {', '.join(self.details)}" if self.details else text


@dataclass
class ImportResult:
    changes: list[Change]
    dry_run: bool

    def count(self, action: str) -> int:
        return sum(change.action == action for change in self.changes)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(a)} {a}" for a in ("created", "updated", "deleted"))
        if self.dry_run:
            return f"Dry run: {len(self.changes)} would change ({counts}); nothing was saved."
        return f"{len(self.changes)} changed ({counts})."


@dataclass
class _Pending:
    """An input or output with the file's settings assigned, waiting to be validated and saved."""

    obj: Input | Output
    what: str
    before: dict[str, Any] | None
    original: dict[str, Any] = field(default_factory=dict)  # what parking overwrites
    parked: bool = False
    # Many-to-many relations (an output's ladder), written once the row is saved.
    relations: dict[str, list[models.Model]] = field(default_factory=dict)


def import_document(
    document: Any, environ: Mapping[str, str], *, prune: bool = False, dry_run: bool = False
) -> ImportResult:
    """Apply the document in one transaction: a ConfigError leaves the database as it was."""
    with transaction.atomic():
        changes = _Importer(environ, prune).run(document)
        if dry_run:
            transaction.set_rollback(True)
    return ImportResult(changes, dry_run)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    details = []
    for name, old in before.items():
        if after[name] != old:
            # Never print a secret, not even the old one.
            shown = "changed" if name in SECRET_FIELDS else f"{show(old)} -> {show(after[name])}"
            details.append(f"{name} {shown}")
    return tuple(details)


def _snapshot(obj: models.Model, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: file_value(obj, name) for name in FIELDS[type(obj)] if name not in skip}


def _snapshot_without(snapshot: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    return {name: value for name, value in snapshot.items() if name not in skip}


def _validation_lines(what: str, error: ValidationError) -> list[str]:
    lines = []
    for name, messages in error.message_dict.items():
        where = what if name == NON_FIELD_ERRORS else f"{what} / {name}"
        lines.extend(f"{where}: {message}" for message in messages)
    return lines


def _clean(obj: models.Model, what: str) -> None:
    try:
        obj.full_clean()
    except ValidationError as error:
        raise ConfigError(_validation_lines(what, error)) from None


class _Importer:
    def __init__(self, environ: Mapping[str, str], prune: bool) -> None:
        self.environ = environ
        self.prune = prune
        # Per route (None: profiles and deleted routes), so that a route's own line, known only at
        # the end, still comes before its inputs' and outputs'.
        self.changes: dict[str | None, list[Change | None]] = {None: []}
        self.missing_secrets: list[str] = []

    def run(self, document: Any) -> list[Change]:
        profiles, routes = read_document(document)
        for name, values in profiles.items():
            self._profile(name, values)
        if self.prune:
            for route in Route.objects.exclude(name__in=list(routes)).order_by("name"):
                route.delete()
                self.changes[None].append(Change("deleted", label(route.name)))
        pending: list[_Pending] = []
        imported = []
        for name, spec in routes.items():
            route, before = self._route(name, spec)
            for kind in ENDPOINT_KINDS:
                pending += self._endpoints(route, kind, spec.endpoints[kind])
            imported.append((route, before, spec))
        if self.missing_secrets:
            raise ConfigError(self.missing_secrets)
        # Validate every endpoint against the final state, not a half-applied one: moving a port
        # or swapping two priorities would otherwise clash with a row not yet updated.
        self._park(pending)
        for item in pending:
            self._save_endpoint(item)
        for route, before, spec in imported:
            self._desired_state(route, before, spec)
        return [change for changes in self.changes.values() for change in changes if change is not None]

    def _assign(
        self, obj: models.Model, values: dict[str, Any], what: str, skip: tuple[str, ...] = ()
    ) -> dict[str, list[models.Model]]:
        """Set the file's values on ``obj``; returns its many-to-many relations, which can only be
        written once it is saved."""
        errors = []
        relations: dict[str, list[models.Model]] = {}
        for name in FIELDS[type(obj)]:
            if name in skip:
                continue
            model_field = obj._meta.get_field(name)
            default = [] if model_field.many_to_many else model_field.get_default()
            raw = values.get(name, default)
            try:
                if model_field.many_to_many:
                    names = typed(model_field, raw, what)
                    relations[name] = [self._related(model_field, item, what) for item in names]
                elif name in SECRET_FIELDS:
                    secret = self._secret(obj, name, raw, what)
                    if secret is not _KEEP:
                        setattr(obj, name, secret)
                elif model_field.is_relation:
                    setattr(obj, name, self._related(model_field, typed(model_field, raw, what), what))
                else:
                    setattr(obj, model_field.attname, typed(model_field, raw, what))
            except ConfigError as error:
                errors += error.lines
        if errors:
            raise ConfigError(errors)
        return relations

    def _secret(self, obj: models.Model, name: str, raw: Any, what: str) -> Any:
        if raw is None:
            return ""
        if isinstance(raw, str):
            return raw
        if isinstance(raw, dict) and list(raw) == ["env"] and isinstance(raw["env"], str) and raw["env"]:
            # An empty variable counts as unset: silently dropping encryption is worse than failing.
            value = self.environ.get(raw["env"], "")
            if value:
                return value
            if obj.pk is not None and getattr(obj, name):
                return _KEEP
            self.missing_secrets.append(f"{what} / {name}: the environment variable {raw['env']} is not set.")
            return _KEEP
        raise ConfigError([f"{what} / {name}: expected the secret as text or as {{env: VARIABLE_NAME}}."])

    def _related(self, model_field: models.Field, name: str | None, what: str) -> models.Model | None:
        if name is None:
            return None
        related = model_field.related_model._default_manager.filter(name=name).first()
        if related is None:
            kind = model_field.related_model._meta.verbose_name
            raise ConfigError([f'{what} / {model_field.name}: there is no {kind} named "{name}".'])
        return related

    def _record(
        self,
        obj: models.Model,
        what: str,
        before: dict[str, Any] | None,
        route: str | None = None,
        relations: dict[str, list[models.Model]] | None = None,
    ) -> bool:
        """Note what changed; returns whether the object needs saving."""
        if before is None:
            self.changes[route].append(Change("created", what))
            return True
        after = _snapshot(obj)
        after.update({name: sorted(o.name for o in objs) for name, objs in (relations or {}).items()})
        details = _diff(before, after)
        if details:
            self.changes[route].append(Change("updated", what, details))
        return bool(details)

    def _profile(self, name: str, values: dict[str, Any]) -> None:
        what = f'profile "{name}"'
        profile = TranscodeProfile.objects.filter(name=name).first()
        before = None if profile is None else _snapshot(profile)
        profile = profile or TranscodeProfile(name=name)
        self._assign(profile, values, what)
        _clean(profile, what)
        if self._record(profile, what, before):
            profile.save()

    def _route(self, name: str, spec: RouteSpec) -> tuple[Route, dict[str, Any] | None]:
        what = label(name)
        route = Route.objects.filter(name=name).first()
        before = None if route is None else _snapshot(route)
        route = route or Route(name=name)
        self._assign(route, spec.values, what, skip=DESIRED_STATE)
        _clean(route, what)
        # A full save restarts the route's pipeline, so only when a setting really differs.
        if before is None or _snapshot(route, DESIRED_STATE) != _snapshot_without(before, DESIRED_STATE):
            route.save()
        self.changes[name] = [None]  # the route's own line, filled in by _desired_state
        return route, before

    def _endpoints(self, route: Route, kind: str, specs: dict[str, dict[str, Any]]) -> list[_Pending]:
        model = ENDPOINT_KINDS[kind]
        existing = {e.name: e for e in model.objects.filter(route=route).select_related("route")}
        if self.prune:
            for name in sorted(set(existing) - set(specs)):
                existing.pop(name).delete()
                self.changes[route.name].append(Change("deleted", label(route.name, kind, name)))
        pending = []
        for name, values in specs.items():
            what = label(route.name, kind, name)
            obj = existing.get(name) or model(route=route, name=name)
            before = None if obj.pk is None else _snapshot(obj)
            original = {"port": obj.port, "priority": obj.priority} if isinstance(obj, Input) else {"port": obj.port}
            relations = self._assign(obj, values, what)
            pending.append(_Pending(obj, what, before, original, relations=relations))
        return pending

    def _park(self, pending: list[_Pending]) -> None:
        """Move changed endpoints out of the way (no port, a spare priority) until each is validated."""
        changed = [p for p in pending if p.before is not None and _snapshot(p.obj) != p.before]
        if not changed:
            return
        wanted = [p.obj.priority for p in pending if isinstance(p.obj, Input) and isinstance(p.obj.priority, int)]
        spare = max([Input.objects.aggregate(top=Max("priority"))["top"] or 0, *wanted]) + 1
        for item in changed:
            updates: dict[str, Any] = {"port": None}
            if isinstance(item.obj, Input):
                updates["priority"] = spare
                spare += 1
            type(item.obj).objects.filter(pk=item.obj.pk).update(**updates)
            item.parked = True

    def _save_endpoint(self, item: _Pending) -> None:
        _clean(item.obj, item.what)
        if isinstance(item.obj, Output) and "ladder" in item.relations:
            errors = ladder_errors(item.obj.protocol, item.obj.profile, item.relations["ladder"])
            if errors:
                raise ConfigError([f"{item.what} / {name}: {message}" for name, message in errors.items()])
        if self._record(item.obj, item.what, item.before, item.obj.route.name, item.relations):
            item.obj.save()
            for name, related in item.relations.items():
                getattr(item.obj, name).set(related)
        elif item.parked:
            # Changed in the file's spelling only (full_clean filled in the same values): put the
            # row back as it was without a save, which would restart the pipeline for nothing.
            type(item.obj).objects.filter(pk=item.obj.pk).update(**item.original)

    def _desired_state(self, route: Route, before: dict[str, Any] | None, spec: RouteSpec) -> None:
        what = label(route.name)
        # A pruned input may have been the pin; the database has already released it.
        route.pinned_input_id = Route.objects.values_list("pinned_input_id", flat=True).get(pk=route.pk)
        pinned = typed(Route._meta.get_field("pinned_input"), spec.values.get("pinned_input"), what)
        target = None
        if pinned is not None:
            target = route.inputs.filter(name=pinned).first()
            if target is None:
                raise ConfigError([f'{what} / pinned_input: this route has no input named "{pinned}".'])
        if route.pinned_input_id != (target.pk if target else None):
            route.pinned_input = target
            _clean(route, what)
            control.switch(route, target.pk if target else None)
        enabled_field = Route._meta.get_field("enabled")
        enabled = typed(enabled_field, spec.values.get("enabled", enabled_field.get_default()), what)
        if enabled != route.enabled:
            (control.start if enabled else control.stop)(route)
        if before is None:
            self.changes[route.name][0] = Change("created", what)
        else:
            details = _diff(before, _snapshot(route))
            self.changes[route.name][0] = Change("updated", what, details) if details else None
