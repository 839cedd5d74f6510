"""Inputs and outputs: where a route's stream comes from and where it goes."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from media_engine.outputs.recording import file_prefix, list_recordings
from routes.choices import InputProtocol, OutputProtocol, PbKeyLen, SrtMode
from routes.models.profile import TranscodeProfile
from routes.models.route import Route
from routes.validators import (
    SRT_STREAMID_MAX,
    PassphraseLengthValidator,
    bitrate_floor_validators,
    latency_validators,
    no_control_characters,
    playlist_validators,
    port_validators,
    rotate_validators,
    segment_validators,
    timeout_validators,
    ttl_validators,
)

MEDIA_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(?:ts|m3u8)")
# An HLS rendition's own folder inside its output's directory; the engine names them so.
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
RTMP_DEFAULT_PORT = 1935
RTMP_APP = "live"


class Endpoint(models.Model):
    """What inputs and outputs share: an address, SRT settings and secrets."""

    name = models.CharField(max_length=100, validators=[no_control_characters])
    mode = models.CharField(
        "SRT mode",
        max_length=10,
        choices=SrtMode.choices,
        blank=True,
        help_text="SRT only: listener waits for the peer, caller dials it, rendezvous does both.",
    )
    host = models.CharField(
        max_length=255,
        blank=True,
        validators=[no_control_characters],
        help_text="Peer to dial (caller), local address to bind (listener, blank for all), or multicast group.",
    )
    port = models.PositiveIntegerField(null=True, blank=True, validators=port_validators)
    url = models.CharField(max_length=2048, blank=True, validators=[no_control_characters])
    streamid = models.CharField(
        "SRT stream ID",
        max_length=SRT_STREAMID_MAX,
        blank=True,
        validators=[no_control_characters],
        error_messages={"max_length": "An SRT stream ID is at most 512 characters."},
    )
    passphrase = models.CharField(
        "SRT passphrase",
        max_length=79,
        blank=True,
        validators=[PassphraseLengthValidator()],
        error_messages={"max_length": "An SRT passphrase must be 10 to 79 characters long."},
    )
    pbkeylen = models.PositiveSmallIntegerField("SRT key length", choices=PbKeyLen.choices, default=PbKeyLen.AES128)
    latency_ms = models.PositiveIntegerField("SRT latency (ms)", default=120, validators=latency_validators)
    stream_key = models.CharField("RTMP stream key", max_length=255, blank=True, validators=[no_control_characters])
    interface = models.CharField(
        "multicast interface",
        max_length=45,
        blank=True,
        help_text="UDP multicast: the local IPv4 address of the network interface to use. Blank: the default.",
    )

    srt_protocol: str = "srt"
    default_srt_mode: str = SrtMode.LISTENER

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.route} / {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        routes = {self.route_id}
        if self.pk is not None:
            routes.update(type(self).objects.filter(pk=self.pk).values_list("route_id", flat=True))
        super().save(*args, **kwargs)
        _config_changed(routes)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        route_id = self.route_id
        deleted = super().delete(*args, **kwargs)
        _config_changed({route_id})
        return deleted

    @property
    def binds_port(self) -> bool:
        """Whether the gateway binds this endpoint's port locally: listeners, and SRT rendezvous,
        which binds the same port number it meets the peer on."""
        return self.is_listener or (self.is_srt and self.mode == SrtMode.RENDEZVOUS)

    def validate_constraints(self, exclude: object = None) -> None:
        # clean() checks the unique-in-route constraints itself, naming the clashing input; the
        # database constraints stay as the last guard against concurrent writes.
        return

    @property
    def is_srt(self) -> bool:
        return self.protocol == self.srt_protocol

    @property
    def has_passphrase(self) -> bool:
        return bool(self.passphrase)

    @property
    def has_stream_key(self) -> bool:
        return bool(self.stream_key)

    def _normalise(self) -> None:
        if self.is_srt and not self.mode:
            self.mode = self.default_srt_mode
        if not self.is_srt:
            self.mode = ""

    def _srt_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.is_srt:
            for field, label in (("passphrase", "a passphrase"), ("streamid", "a stream ID")):
                if getattr(self, field):
                    errors[field] = f"Only SRT uses {label}; remove it or choose the srt protocol."
            return errors
        if self.mode == SrtMode.LISTENER:
            if self.port is None:
                errors["port"] = "An SRT listener needs the UDP port it listens on."
        else:
            if not self.host:
                errors["host"] = f"An SRT {self.mode} needs the peer's host name or address."
            if self.port is None:
                errors["port"] = f"An SRT {self.mode} needs the peer's UDP port."
        return errors

    def _base_errors(self) -> dict[str, str]:
        errors = self._srt_errors()
        if self.stream_key and self.protocol != "rtmp":
            errors.setdefault("stream_key", "Only RTMP uses a stream key; remove it or choose the rtmp protocol.")
        if self.interface:
            if self.protocol != "udp":
                errors["interface"] = "Only UDP uses a multicast interface; remove it or choose the udp protocol."
            elif not isinstance(_ip_or_none(self.interface), ipaddress.IPv4Address):
                errors["interface"] = "The multicast interface is given by its local IPv4 address, e.g. 10.0.0.5."
        return errors

    def _directory_errors(self, errors: dict[str, str], what: str) -> None:
        if self.url and not self.url.startswith("/"):
            errors["url"] = f"{what} writes to an absolute directory path (or leave it blank for the data directory)."

    def _check_name_unique(self, errors: dict[str, str]) -> None:
        if self.route_id is None or not self.name:
            return
        siblings = type(self).objects.filter(route_id=self.route_id, name=self.name).exclude(pk=self.pk)
        if siblings.exists():
            errors["name"] = f"This route already has an {self._meta.model_name} with this name."

    def _check_listener_conflict(self, errors: dict[str, str]) -> None:
        from routes.listeners import find_conflict

        if "port" in errors:
            return
        conflict = find_conflict(self)
        if conflict:
            errors["port"] = conflict


def _config_changed(route_ids: set[int]) -> None:
    """Running pipelines of these routes restart with the new inputs and outputs."""
    Route.objects.filter(pk__in=route_ids).update(config_version=models.F("config_version") + 1)


def _require_url(url: str, schemes: tuple[str, ...], what: str) -> str | None:
    if not url:
        return f"{what} needs a URL."
    if not url.lower().startswith(tuple(f"{s}://" for s in schemes)):
        return f"{what} takes a {' or '.join(s + '://' for s in schemes)} URL."
    return None


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Input(Endpoint):
    route = models.ForeignKey("routes.Route", on_delete=models.CASCADE, related_name="inputs")
    priority = models.PositiveIntegerField(help_text="Lower is preferred: priority 1 is the main input.")
    protocol = models.CharField(max_length=10, choices=InputProtocol.choices)
    timeout_ms = models.PositiveIntegerField(
        "health timeout (ms)",
        null=True,
        blank=True,
        validators=timeout_validators,
        help_text="No data for this long marks the input down. Empty: the route's default.",
    )
    source_address = models.CharField(
        "multicast source",
        max_length=45,
        blank=True,
        help_text="UDP multicast: accept only this sender (source-specific multicast). Blank: any sender.",
    )
    min_bitrate_kbps = models.PositiveIntegerField(
        "bitrate floor (kb/s)",
        null=True,
        blank=True,
        validators=bitrate_floor_validators,
        help_text="Below this bitrate for a whole second the input is down. Empty: no floor.",
    )

    class Meta:
        ordering = ["route", "priority"]
        constraints = [
            models.UniqueConstraint(fields=["route", "priority"], name="input_priority_unique_in_route"),
            models.UniqueConstraint(fields=["route", "name"], name="input_name_unique_in_route"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            # An input moved to another route can no longer be its former route's manual override.
            Route.objects.filter(pinned_input=self).exclude(pk=self.route_id).update(pinned_input=None)
        super().save(*args, **kwargs)

    @property
    def is_listener(self) -> bool:
        """Whether the gateway waits for the encoder to send (and so owns a port)."""
        return self.protocol in (InputProtocol.RTMP, InputProtocol.UDP) or (
            self.is_srt and self.mode == SrtMode.LISTENER
        )

    def clean(self) -> None:
        self._normalise()
        if self.protocol == InputProtocol.RTMP and self.port is None:
            self.port = RTMP_DEFAULT_PORT
        errors = self._base_errors()
        if self.protocol == InputProtocol.RTMP and not self.stream_key:
            errors["stream_key"] = "An RTMP input needs the stream key the encoder publishes with."
        elif self.protocol == InputProtocol.UDP:
            if self.port is None:
                errors["port"] = "A UDP input needs the port it receives on."
            if self.host and _ip_or_none(self.host) is None:
                errors["host"] = "A UDP input's host is a local address or a multicast group, as an IP address."
        elif self.protocol in (InputProtocol.HTTP, InputProtocol.HLS):
            problem = _require_url(self.url, ("http", "https"), f"An {self.get_protocol_display()} input")
            if problem:
                errors["url"] = problem
        elif self.protocol == InputProtocol.FILE and not self.url:
            errors["url"] = "A file input needs the path of the file to play."
        if self.source_address:
            group = _ip_or_none(self.host)
            if self.protocol != InputProtocol.UDP or group is None or not group.is_multicast:
                errors["source_address"] = "A multicast source only applies to a UDP input on a multicast group."
            elif _ip_or_none(self.source_address) is None:
                errors["source_address"] = "The multicast source is the sender's IP address."
        self._check_name_unique(errors)
        self._check_priority_unique(errors)
        if self.binds_port:
            self._check_listener_conflict(errors)
        if errors:
            raise ValidationError(errors)

    def _check_priority_unique(self, errors: dict[str, str]) -> None:
        if self.route_id is None or self.priority is None:
            return
        taken = Input.objects.filter(route_id=self.route_id, priority=self.priority).exclude(pk=self.pk).first()
        if taken:
            errors["priority"] = (
                f'Input "{taken.name}" of this route already has priority {self.priority}; '
                "each input needs its own priority (lower is preferred)."
            )

    def encoder_url(self, public_host: str) -> str | None:
        """The URL an encoder sends to, for inputs where the gateway listens."""
        if not self.is_listener or self.port is None:
            return None
        host = _url_host(self.host if self.protocol == InputProtocol.UDP and self.host else public_host)
        if self.is_srt:
            query = f"?streamid={quote(self.streamid, safe='')}" if self.streamid else ""
            return f"srt://{host}:{self.port}{query}"
        if self.protocol == InputProtocol.RTMP:
            return f"rtmp://{host}:{self.port}/{RTMP_APP}"
        return f"udp://{host}:{self.port}"


class Output(Endpoint):
    route = models.ForeignKey("routes.Route", on_delete=models.CASCADE, related_name="outputs")
    protocol = models.CharField(max_length=10, choices=OutputProtocol.choices)
    profile = models.ForeignKey(
        "routes.TranscodeProfile",
        verbose_name="transcode profile",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="outputs",
        help_text="Empty: pass the stream through untouched.",
    )
    ladder = models.ManyToManyField(
        "routes.TranscodeProfile",
        verbose_name="ABR ladder",
        blank=True,
        related_name="ladder_outputs",
        help_text="HLS only: more renditions beside the transcode profile, for players to switch between.",
    )
    enabled = models.BooleanField(default=True)
    ttl = models.PositiveSmallIntegerField(
        "UDP TTL",
        null=True,
        blank=True,
        validators=ttl_validators,
        help_text="Hops a UDP datagram may take. Empty: 1 for multicast, the system default for unicast.",
    )
    segment_s = models.PositiveSmallIntegerField("HLS segment duration (s)", default=4, validators=segment_validators)
    playlist_size = models.PositiveSmallIntegerField(
        "HLS playlist length",
        default=6,
        validators=playlist_validators,
        help_text="Segments listed in the live playlist.",
    )
    rotate_s = models.PositiveIntegerField(
        "recording file duration (s)",
        default=3600,
        validators=rotate_validators,
        help_text="A recording starts a new file after this long, at a keyframe.",
    )
    keep_files = models.PositiveIntegerField(
        "recordings kept", default=0, help_text="Older recording files beyond this many are deleted. 0: no limit."
    )
    keep_hours = models.PositiveIntegerField(
        "recording retention (h)", default=0, help_text="Recording files older than this are deleted. 0: no limit."
    )

    default_srt_mode = SrtMode.CALLER

    class Meta:
        ordering = ["route", "name"]
        constraints = [models.UniqueConstraint(fields=["route", "name"], name="output_name_unique_in_route")]

    @property
    def is_listener(self) -> bool:
        return self.is_srt and self.mode == SrtMode.LISTENER

    def clean(self) -> None:
        self._normalise()
        errors = self._base_errors()
        if self.protocol == OutputProtocol.RTMP:
            problem = _require_url(self.url, ("rtmp", "rtmps"), "An RTMP output")
            if problem:
                errors["url"] = problem
        elif self.protocol == OutputProtocol.UDP:
            if not self.host:
                errors["host"] = "A UDP output needs the destination address (unicast or multicast)."
            if self.port is None:
                errors["port"] = "A UDP output needs the destination port."
        elif self.protocol == OutputProtocol.HLS:
            self._directory_errors(errors, "An HLS output")
        elif self.protocol == OutputProtocol.FILE:
            self._directory_errors(errors, "A recording")
        if self.ttl is not None and self.protocol != OutputProtocol.UDP:
            errors["ttl"] = "Only UDP outputs take a TTL."
        if self.profile is not None and self.profile.encodes_only_audio:
            errors["profile"] = _audio_only(self.profile)
        self._check_name_unique(errors)
        if self.binds_port:
            self._check_listener_conflict(errors)
        if errors:
            raise ValidationError(errors)

    def renditions(self) -> list[TranscodeProfile]:
        """The profiles this output encodes, main profile first, then its ladder from the highest
        bitrate down (the order players list variants in). Empty: it passes the stream through."""
        if self.profile is None or self.profile.passes_through or self.profile.encodes_only_audio:
            return []
        if self.protocol != OutputProtocol.HLS:
            return [self.profile]
        ladder = sorted(self.ladder.all(), key=lambda p: (-(p.video_bitrate_kbps or 0), -(p.height or 0), p.name))
        return [self.profile, *(p for p in ladder if p.pk != self.profile_id and p.encodes_video)]

    def media_directory(self) -> Path | None:
        """Where an HLS or recording output writes: its own URL (a path), else its own folder in the
        data directory, which the web app serves and lists from."""
        if self.protocol not in (OutputProtocol.HLS, OutputProtocol.FILE):
            return None
        if self.url:
            return Path(self.url)
        kind = "hls" if self.protocol == OutputProtocol.HLS else "recordings"
        return Path(settings.DATA_DIR) / kind / str(self.pk)

    def recordings(self) -> list[dict[str, Any]]:
        """This recording output's files, oldest first (name, size, started, modified, duration_s)."""
        directory = self.media_directory()
        if self.protocol != OutputProtocol.FILE or directory is None:
            return []
        return list_recordings(directory, prefix=file_prefix(self.name))

    def media_file(self, name: str, variant: str | None = None) -> Path | None:
        """A file this HLS or recording output wrote, by its bare name (and for an HLS rendition, its
        folder's name); None for anything else, so a crafted name can never reach outside the
        output's directory."""
        directory = self.media_directory()
        if directory is None or not MEDIA_FILE_NAME.fullmatch(name):
            return None
        path = directory / name
        if variant is not None:
            if self.protocol != OutputProtocol.HLS or not VARIANT_NAME.fullmatch(variant):
                return None
            path = directory / variant / name
            # Nothing but the engine writes there; a link out of the directory is not followed.
            if not path.resolve().is_relative_to(directory.resolve()):
                return None
        return path if path.is_file() else None

    def player_url(self, public_host: str) -> str | None:
        """The URL a player (VLC, ffplay) or a downstream caller opens, for listener outputs."""
        if not self.is_listener or self.port is None:
            return None
        query = f"?streamid={quote(self.streamid, safe='')}" if self.streamid else ""
        return f"srt://{_url_host(public_host)}:{self.port}{query}"


def _audio_only(profile: TranscodeProfile) -> str:
    return (
        f'Profile "{profile.name}" re-encodes only the audio, which is not supported yet: choose a profile '
        "that encodes the video too, or one that copies both."
    )


def ladder_errors(protocol: str, profile: TranscodeProfile | None, ladder: list[TranscodeProfile]) -> dict[str, str]:
    """What is wrong with an output's ABR ladder, by field; shared by the API and the admin, which
    see the ladder before it is saved (a many-to-many relation is written after the output)."""
    if not ladder:
        return {}
    if protocol != OutputProtocol.HLS:
        return {"ladder": "Only HLS outputs take an ABR ladder; remove its profiles or choose the hls protocol."}
    if profile is None:
        return {"ladder": "An ABR ladder adds renditions beside the transcode profile: choose that profile first."}
    if not profile.encodes_video:
        return {
            "profile": f'Profile "{profile.name}" copies the video, but with an ABR ladder the transcode profile '
            "is one of the renditions and must encode it (h264 or hevc)."
        }
    seen: set[int] = set()
    for rung in ladder:
        if rung.pk == profile.pk:
            return {
                "ladder": f'Profile "{rung.name}" is already this output\'s transcode profile; the ladder lists '
                "the other renditions."
            }
        if rung.pk in seen:
            return {"ladder": f'Profile "{rung.name}" is listed twice; each rendition needs its own profile.'}
        seen.add(rung.pk)
        if not rung.encodes_video:
            return {
                "ladder": f'Profile "{rung.name}" copies the video; every rendition of a ladder must encode it '
                "(h264 or hevc)."
            }
    return {}


@receiver(m2m_changed, sender=Output.ladder.through)
def _ladder_changed(sender: type, instance: models.Model, action: str, reverse: bool, **kwargs: Any) -> None:
    """A changed ladder restarts the route's pipeline, like any other change to the output."""
    if isinstance(instance, Output):
        if action in ("post_add", "post_remove", "post_clear"):
            _config_changed({instance.route_id})
        return
    # From the profile's side (profile.ladder_outputs): the outputs are named by pk, or all of them on clear.
    if action in ("post_add", "post_remove"):
        _config_changed(set(Output.objects.filter(pk__in=kwargs["pk_set"]).values_list("route_id", flat=True)))
    elif action == "pre_clear":
        _config_changed(set(instance.ladder_outputs.values_list("route_id", flat=True)))  # type: ignore[attr-defined]
