"""The routes file: which fields it holds, in which order, and how it is written and read as YAML."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import yaml
from django.db import models

from routes.models import Input, Output, Route, TranscodeProfile

FORMAT_VERSION = 1

# Field order in the file. Explicit rather than taken from the models, so a reordered model does not
# reorder every exported file; a test checks that every editable model field is listed.
PROFILE_FIELDS = (
    "video_codec", "encoder", "width", "height", "fps", "video_bitrate_kbps", "gop",
    "preset", "audio_codec", "audio_bitrate_kbps",
)  # fmt: skip
ROUTE_FIELDS = (
    "enabled", "failover_mode", "failback", "holdoff_s", "input_timeout_ms", "slate", "pinned_node", "pinned_input",
)  # fmt: skip
ENDPOINT_FIELDS = (
    "protocol", "mode", "host", "port", "url", "streamid", "passphrase", "pbkeylen", "latency_ms", "stream_key",
    "interface",
)  # fmt: skip
INPUT_FIELDS = ("priority", *ENDPOINT_FIELDS, "source_address", "timeout_ms", "min_bitrate_kbps")
OUTPUT_FIELDS = (
    "enabled", *ENDPOINT_FIELDS, "profile", "ladder", "ttl", "segment_s", "playlist_size", "rotate_s", "keep_files",
    "keep_hours",
)  # fmt: skip
SECRET_FIELDS = ("passphrase", "stream_key")

FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    TranscodeProfile: PROFILE_FIELDS,
    Route: ROUTE_FIELDS,
    Input: INPUT_FIELDS,
    Output: OUTPUT_FIELDS,
}
ENDPOINT_KINDS: dict[str, type[Input] | type[Output]] = {"inputs": Input, "outputs": Output}


@dataclass
class SecretRef:
    """A secret kept out of the file: its value is read from this environment variable at import."""

    env: str


def file_value(obj: models.Model, name: str) -> Any:
    """A field's value as the file writes it: related objects by name, choices as plain values."""
    field = obj._meta.get_field(name)
    if field.many_to_many:
        return sorted(related.name for related in getattr(obj, name).all()) if obj.pk is not None else []
    if field.is_relation:
        related = getattr(obj, name)
        return None if related is None else related.name
    value = getattr(obj, field.attname)
    # Values set from a choices enum (rather than read back from the database) are enum members.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def label(route: str, kind: str | None = None, name: str | None = None) -> str:
    """How messages name an object: route "news" / input "main"."""
    text = f'route "{route}"'
    if kind is not None:
        text += f' / {kind.rstrip("s")} "{name}"'
    return text


def _env_word(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def secret_variable(route: str, kind: str, endpoint: str, field: str) -> str:
    """VC_SECRET_<ROUTE>_<IN|OUT>_<ENDPOINT>_<FIELD>: inputs and outputs may share a name."""
    side = "IN" if kind == "inputs" else "OUT"
    return "_".join(("VC_SECRET", _env_word(route), side, _env_word(endpoint), _env_word(field)))


def disambiguate(refs: dict[tuple[str, str, str, str], SecretRef]) -> None:
    """Give each secret its own variable where different names map to the same one ("a-b" and "a b")."""
    by_name: dict[str, list[tuple[str, str, str, str]]] = {}
    for slot, ref in refs.items():
        by_name.setdefault(ref.env, []).append(slot)
    for slots in by_name.values():
        if len(slots) > 1:
            for slot in slots:
                digest = hashlib.sha256("\0".join(slot).encode()).hexdigest()[:6].upper()
                refs[slot].env = f"{refs[slot].env}_{digest}"


class _Dumper(yaml.SafeDumper):
    pass


def _represent_secret(dumper: yaml.SafeDumper, ref: SecretRef) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", {"env": ref.env}, flow_style=True)


_Dumper.add_representer(SecretRef, _represent_secret)

HEADER = """\
# Vajra Cast routes, keyed by name. Load with: manage.py import_routes FILE
# A secret written as {env: NAME} is read from the environment variable NAME when importing.
"""


def dump_yaml(document: dict[str, Any]) -> str:
    # A wide line limit: a long URL folded over two lines makes diffs harder to read.
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return HEADER + body


class _StrictLoader(yaml.SafeLoader):
    """Refuses a key given twice: plain YAML keeps the last, silently dropping a route or a setting."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the base class
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'"{key}" is given twice in the same mapping', key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
