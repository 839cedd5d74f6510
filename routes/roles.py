"""Who may do what: viewer reads, operator also starts, stops and switches, admin does everything.

A person's role is the Django group of that name (superusers are admins); an API key carries
its own role.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

from routes.choices import Role


def role_of_user(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER):
        if role.value in names:
            return role
    return None


def grant_role(user: AbstractBaseUser, role: Role) -> None:
    """Make the user a member of exactly this role's group."""
    groups = [Group.objects.get_or_create(name=r.value)[0] for r in Role]
    user.groups.remove(*groups)
    user.groups.add(Group.objects.get(name=role.value))


def allows(role: Role | None, needed: Role) -> bool:
    return role is not None and role.rank >= needed.rank
