"""Serializer pieces shared by the apps."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, empty
from rest_framework.serializers import as_serializer_error

__all__ = ["RefuseUnknownFields"]


class RefuseUnknownFields:
    """Mixin for request-body serializers: a top-level field the serializer does not declare is a 400 with that
    field's message, beside the other fields' messages (DRF drops it silently, so a misspelt setting such as
    max_token was ignored and its default used).

    Every error of a request comes at once: when a field fails, DRF skips ``validate()``, so a blank name hid the
    spec's errors until it was filled. Here ``validate()`` still runs on the fields that passed, and its messages
    join the fields' (a check that needs a failed field is skipped: that field already has its message)."""

    def run_validation(self, data: Any = empty) -> Any:
        try:
            return super().run_validation(data)  # type: ignore[misc]  # a mixin: the serializer has it
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict) or not isinstance(data, Mapping):
                raise
            errors = dict(exc.detail)
        valid: dict[str, Any] = {}
        for field in self._writable_fields:  # type: ignore[attr-defined]  # the serializer's
            if field.field_name in errors:
                continue
            try:
                valid[field.source] = field.run_validation(field.get_value(data))
            except (serializers.ValidationError, DjangoValidationError, SkipField):
                continue
        try:
            self.validate(valid)  # type: ignore[attr-defined]  # the serializer's
        except serializers.ValidationError as more:
            if isinstance(more.detail, dict):  # each field's messages a list, as DRF makes them after validate()
                errors.update({k: v for k, v in as_serializer_error(more).items() if k not in errors})
        except (KeyError, TypeError, AttributeError):
            pass
        raise serializers.ValidationError(errors)

    def to_internal_value(self, data: Any) -> Any:
        declared = self.fields  # type: ignore[attr-defined]  # the serializer's
        unknown = sorted(set(data) - set(declared)) if isinstance(data, Mapping) else []
        errors = {name: [f"unknown field; the fields are: {', '.join(declared)}"] for name in unknown}
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]  # a mixin: the serializer has it
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**errors, **exc.detail}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value
