from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone


class RouteLease(models.Model):
    """Who runs a route right now. One row per route; the holder renews it, an expired one is free.

    ``token`` grows with every new holder (a fencing token): a pipeline that was paused past its
    lease finds its token stale at the next renewal and stops, so two copies never both run.
    """

    route = models.OneToOneField("routes.Route", on_delete=models.CASCADE, primary_key=True, related_name="lease")
    owner = models.CharField(max_length=200)
    token = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.route_id} held by {self.owner} until {self.expires_at:%H:%M:%S}"

    @classmethod
    def acquire(cls, route_id: int, owner: str, ttl_s: float) -> int | None:
        """Take the lease if it is free or expired; returns the new fencing token, or None."""
        now = timezone.now()
        expires = now + timedelta(seconds=ttl_s)
        with transaction.atomic():
            taken = cls.objects.filter(Q(expires_at__lt=now) | Q(owner=owner), route_id=route_id).update(
                owner=owner, token=F("token") + 1, expires_at=expires
            )
            if taken:
                return cls.objects.values_list("token", flat=True).get(route_id=route_id)
        try:
            with transaction.atomic():
                cls.objects.create(route_id=route_id, owner=owner, token=1, expires_at=expires)
        except IntegrityError:
            return None  # someone else holds it, or took it between our two statements
        return 1

    @classmethod
    def renew(cls, route_id: int, owner: str, token: int, ttl_s: float) -> bool:
        expires = timezone.now() + timedelta(seconds=ttl_s)
        return bool(cls.objects.filter(route_id=route_id, owner=owner, token=token).update(expires_at=expires))

    @classmethod
    def release(cls, route_id: int, owner: str, token: int) -> None:
        cls.objects.filter(route_id=route_id, owner=owner, token=token).update(expires_at=timezone.now())

    @classmethod
    def held(cls) -> models.QuerySet[RouteLease]:
        return cls.objects.filter(expires_at__gte=timezone.now())
