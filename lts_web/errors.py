"""One error style for the API: a service raises, one DRF exception handler answers.

- ``Conflict``: the change is refused in the object's current state -> 409 ``{"detail": message, **extra}``;
- ``ConfigError`` (searches.core.arch, and its subclasses in the core): bad input -> 400 ``{field: [message]}``;
- ``ValidationError`` from anywhere (a serializer, a view's own check): 400 with every field's value a list of
  messages, ``{field: [message, ...]}``, whether it was raised with a bare string or a list (DRF keeps a dict's
  strings as they are given); a nested field is a dict of the same or a list of them (a ``many=True`` field).

Services raise these instead of returning booleans or reasons; views and pages catch them where they render HTML.
"""
from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from searches.core.arch import ConfigError

__all__ = ["Conflict", "exception_handler", "field_errors", "message_lists"]


class Conflict(Exception):
    """The change is refused in the object's current state (the API answers 409 with the message as ``detail``
    and ``extra`` beside it)."""

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra


def field_errors(exc: ConfigError) -> ValidationError:
    """The 400 of a ConfigError: each field with its message."""
    return ValidationError({field: [message] for field, message in exc.errors.items()})


def message_lists(detail: Any) -> Any:
    """A ValidationError's detail with each field's messages as a list: ``{"device": "required"}`` ->
    ``{"device": ["required"]}``; nested dicts keep their keys, a list of dicts (a ``many=True`` field) its items."""
    if isinstance(detail, dict):
        return {key: _field_messages(value) for key, value in detail.items()}
    return detail


def _field_messages(value: Any) -> Any:
    if isinstance(value, dict):
        return message_lists(value)
    if isinstance(value, list):
        return [message_lists(item) for item in value]
    return [value]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: Conflict -> 409, ConfigError -> 400 with field messages, then DRF's
    (a ValidationError's fields each with a list of messages)."""
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc), **exc.extra}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ConfigError):
        exc = field_errors(exc)
    elif isinstance(exc, ValidationError):
        exc.detail = message_lists(exc.detail)
    return drf_exception_handler(exc, context)
