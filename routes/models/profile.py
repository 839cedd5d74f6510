from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from routes.choices import AudioCodec, Encoder, Preset, VideoCodec
from routes.models.route import Route


def _range(low: int, high: int, what: str) -> list:
    message = f"{what} must be between {low} and {high}."
    return [MinValueValidator(low, message), MaxValueValidator(high, message)]


class TranscodeProfile(models.Model):
    """How an output re-encodes the route's active input; outputs without one pass it through."""

    name = models.CharField(max_length=100, unique=True)
    video_codec = models.CharField(max_length=10, choices=VideoCodec.choices, default=VideoCodec.H264)
    encoder = models.CharField(
        max_length=10,
        choices=Encoder.choices,
        default=Encoder.AUTO,
        help_text="auto picks the best the node has: VAAPI, then QSV, then NVENC, then software.",
    )
    width = models.PositiveIntegerField(null=True, blank=True, validators=_range(16, 7680, "Width"))
    height = models.PositiveIntegerField(null=True, blank=True, validators=_range(16, 4320, "Height"))
    fps = models.PositiveIntegerField("frame rate", null=True, blank=True, validators=_range(1, 120, "The frame rate"))
    video_bitrate_kbps = models.PositiveIntegerField(
        null=True, blank=True, validators=_range(100, 100_000, "The video bitrate (kbit/s)")
    )
    gop = models.PositiveIntegerField(
        "GOP (frames)", null=True, blank=True, validators=_range(1, 600, "The GOP length (frames)")
    )
    preset = models.CharField(max_length=10, choices=Preset.choices, default=Preset.VERYFAST)
    audio_codec = models.CharField(max_length=10, choices=AudioCodec.choices, default=AudioCodec.COPY)
    audio_bitrate_kbps = models.PositiveIntegerField(
        null=True, blank=True, validators=_range(32, 512, "The audio bitrate (kbit/s)")
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self._restart_users()

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        # Outputs protect their main profile; a ladder loses the rendition, which its route must pick up.
        users = set(self._users().values_list("pk", flat=True))
        deleted = super().delete(*args, **kwargs)
        Route.objects.filter(pk__in=users).update(config_version=models.F("config_version") + 1)
        return deleted

    def _users(self) -> models.QuerySet[Route]:
        """Routes with an output that renders this profile, as its main profile or in its ladder."""
        return Route.objects.filter(models.Q(outputs__profile=self) | models.Q(outputs__ladder=self)).distinct()

    def _restart_users(self) -> None:
        """Running pipelines of the routes using this profile restart with the new settings."""
        Route.objects.filter(pk__in=self._users().values("pk")).update(config_version=models.F("config_version") + 1)

    @property
    def encodes_video(self) -> bool:
        return self.video_codec != VideoCodec.COPY

    @property
    def passes_through(self) -> bool:
        """Copies both video and audio: the output relays the stream untouched."""
        return not self.encodes_video and self.audio_codec == AudioCodec.COPY

    @property
    def encodes_only_audio(self) -> bool:
        return not self.encodes_video and self.audio_codec != AudioCodec.COPY

    @property
    def required_encoder(self) -> str | None:
        """The encoder kind a node must have to render this profile; None when any node can."""
        if not self.encodes_video or self.encoder == Encoder.AUTO:
            return None
        return self.encoder

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.video_codec == VideoCodec.COPY:
            for field in ("width", "height", "fps", "video_bitrate_kbps", "gop"):
                if getattr(self, field) is not None:
                    errors[field] = "Video is copied as it is: leave this empty or choose a codec to encode to."
            if self.encoder != Encoder.AUTO:
                errors["encoder"] = "Video is copied as it is: no encoder is used, leave this on auto."
        else:
            if self.video_bitrate_kbps is None:
                errors["video_bitrate_kbps"] = "Encoding video needs a bitrate."
            # 4:2:0 chroma subsampling needs even dimensions; encoders refuse odd ones.
            for field in ("width", "height"):
                value = getattr(self, field)
                if value is not None and value % 2:
                    errors[field] = f"{field.capitalize()} must be an even number of pixels for 4:2:0 video."
        if self.audio_codec == AudioCodec.AAC and self.audio_bitrate_kbps is None:
            errors["audio_bitrate_kbps"] = "Encoding audio to AAC needs a bitrate, e.g. 128."
        if self.audio_codec == AudioCodec.COPY and self.audio_bitrate_kbps is not None:
            errors["audio_bitrate_kbps"] = "Audio is copied as it is: leave the bitrate empty or choose AAC."
        if errors:
            raise ValidationError(errors)
