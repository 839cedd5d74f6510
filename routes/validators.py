"""Field validators whose messages speak the language of broadcast engineers."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.utils.deconstruct import deconstructible

SRT_PASSPHRASE_MIN = 10
SRT_PASSPHRASE_MAX = 79
SRT_STREAMID_MAX = 512
SRT_LATENCY_MIN_MS = 20
SRT_LATENCY_MAX_MS = 8000


@deconstructible
class PassphraseLengthValidator:
    """libsrt refuses passphrases outside 10..79 characters; say so before the handshake fails."""

    def __call__(self, value: str) -> None:
        if value and not SRT_PASSPHRASE_MIN <= len(value) <= SRT_PASSPHRASE_MAX:
            raise ValidationError(
                "An SRT passphrase must be %(min)d to %(max)d characters long; this one has %(len)d.",
                code="passphrase_length",
                params={"min": SRT_PASSPHRASE_MIN, "max": SRT_PASSPHRASE_MAX, "len": len(value)},
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PassphraseLengthValidator)


port_validators = [
    MinValueValidator(1, "A port is a number from 1 to 65535."),
    MaxValueValidator(65535, "A port is a number from 1 to 65535."),
]
latency_validators = [
    MinValueValidator(SRT_LATENCY_MIN_MS, f"SRT latency must be at least {SRT_LATENCY_MIN_MS} ms."),
    MaxValueValidator(SRT_LATENCY_MAX_MS, f"SRT latency must be at most {SRT_LATENCY_MAX_MS} ms (8 s)."),
]
timeout_validators = [
    MinValueValidator(50, "An input timeout below 50 ms would flag healthy inputs as down."),
    MaxValueValidator(60000, "An input timeout is at most 60000 ms (one minute)."),
]
holdoff_validators = [
    MinValueValidator(0, "The failback hold-off cannot be negative."),
    MaxValueValidator(3600, "The failback hold-off is at most 3600 s (one hour)."),
]
bitrate_floor_validators = [
    MinValueValidator(1, "A bitrate floor is at least 1 kb/s; leave it empty for none."),
    MaxValueValidator(1_000_000, "A bitrate floor is at most 1000000 kb/s (1 Gb/s)."),
]
ttl_validators = [
    MinValueValidator(1, "A TTL is at least 1 hop."),
    MaxValueValidator(255, "A TTL is at most 255 hops."),
]
segment_validators = [
    MinValueValidator(1, "An HLS segment lasts at least 1 s."),
    MaxValueValidator(30, "An HLS segment lasts at most 30 s; players wait a whole segment before they start."),
]
playlist_validators = [
    MinValueValidator(2, "An HLS playlist lists at least 2 segments."),
    MaxValueValidator(100, "An HLS playlist lists at most 100 segments."),
]
rotate_validators = [
    MinValueValidator(10, "A recording file lasts at least 10 s."),
    MaxValueValidator(86400, "A recording file lasts at most 86400 s (a day)."),
]
no_control_characters = RegexValidator(
    r"\A[^\x00-\x1f\x7f]*\Z", "Control characters (newlines, tabs, NUL) are not allowed here."
)
