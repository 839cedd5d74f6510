from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import permissions
from rest_framework.request import Request

from routes.choices import Role
from routes.models import ApiKey
from routes.roles import allows, role_of_user

if TYPE_CHECKING:  # rest_framework.views imports this module while it loads
    from rest_framework.views import APIView


def request_role(request: Request) -> Role | None:
    if isinstance(request.auth, ApiKey):
        return Role(request.auth.role)
    return role_of_user(request.user)


class RolePermission(permissions.BasePermission):
    """Reads need viewer (or the view's ``read_role``), actions named in the view's ``operator_actions``
    need operator, the rest admin."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        role = request_role(request)
        if request.method in permissions.SAFE_METHODS:
            needed = getattr(view, "read_role", Role.VIEWER)
        elif getattr(view, "action", None) in getattr(view, "operator_actions", ()):
            needed = Role.OPERATOR
        else:
            needed = Role.ADMIN
        if allows(role, needed):
            return True
        have = role.value if role else "no role"
        self.message = f"This needs the {needed.value} role; you have {have}."
        return False
