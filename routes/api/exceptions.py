"""Every API error is JSON: ``{"message": ..., "errors": {field: [..]}}``, and never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = _first_message(value)
            return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _still_used_by(exc: ProtectedError) -> str:
    users = sorted({f'{obj._meta.verbose_name} "{obj}"' for obj in exc.protected_objects})
    shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
    return f"This cannot be deleted: it is still used by {shown}. Change or delete those first."


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ProtectedError):
        return Response({"message": _still_used_by(exc), "errors": {}}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IntegrityError):
        # A concurrent write beat ours to a unique value; the validation pass could not see it.
        log.warning("integrity error on %s: %s", context["request"].path, exc.__class__.__name__)
        return Response(
            {"message": "This conflicts with a change made at the same time; reload and try again.", "errors": {}},
            status=status.HTTP_409_CONFLICT,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"message": _first_message(errors), "errors": errors}
    else:
        response.data = {"message": _first_message(response.data), "errors": {}}
    return response
