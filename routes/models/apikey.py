from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from routes.choices import Role

KEY_PREFIX = "vc_"


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a plain SHA-256 cannot be brute-forced; no slow KDF needed.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKey(models.Model):
    """A bearer key for the REST API. Only its hash is stored; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What uses this key, e.g. 'playout automation'.")
    role = models.CharField(max_length=10, choices=Role.choices)
    prefix = models.CharField(max_length=12, editable=False, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}, {self.role})"

    @classmethod
    def issue(cls, user: models.Model, role: str, name: str = "") -> tuple[ApiKey, str]:
        """Create a key; returns it with the plaintext, which is not kept anywhere."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(user=user, role=role, name=name, prefix=plaintext[:10], key_hash=hash_key(plaintext))
        return key, plaintext

    @classmethod
    def lookup(cls, plaintext: str) -> ApiKey | None:
        return cls.objects.active().select_related("user").filter(key_hash=hash_key(plaintext)).first()

    def touch(self) -> None:
        # At most one write a minute per key, so polling clients do not write on every request.
        now = timezone.now()
        if self.last_used is None or (now - self.last_used).total_seconds() > 60:
            ApiKey.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now
