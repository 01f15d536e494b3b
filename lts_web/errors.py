"""One error style for the API: a service raises, one DRF exception handler answers.

- ``Conflict``: the change is refused in the object's current state -> 409 ``{"detail": message, **extra}``;
- ``ConfigError`` (searches.core.arch, and its subclasses in the core): bad input -> 400 ``{field: [message]}``.

Services raise these instead of returning booleans or reasons; views and pages catch them where they render HTML.
"""
from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from searches.core.arch import ConfigError

__all__ = ["Conflict", "exception_handler", "field_errors"]


class Conflict(Exception):
    """The change is refused in the object's current state (the API answers 409 with the message as ``detail``
    and ``extra`` beside it)."""

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra


def field_errors(exc: ConfigError) -> ValidationError:
    """The 400 of a ConfigError: each field with its message."""
    return ValidationError({field: [message] for field, message in exc.errors.items()})


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: Conflict -> 409, ConfigError -> 400 with field messages, then DRF's."""
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc), **exc.extra}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ConfigError):
        exc = field_errors(exc)
    return drf_exception_handler(exc, context)
