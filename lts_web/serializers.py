"""Serializer pieces shared by the apps."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

__all__ = ["RefuseUnknownFields"]


class RefuseUnknownFields:
    """Mixin for request-body serializers: a top-level field the serializer does not declare is a 400 with that
    field's message, beside the other fields' messages (DRF drops it silently, so a misspelt setting such as
    max_token was ignored and its default used)."""

    def to_internal_value(self, data: Any) -> Any:
        declared = self.fields  # type: ignore[attr-defined]
        unknown = sorted(set(data) - set(declared)) if isinstance(data, Mapping) else []
        errors = {name: [f"unknown field; the fields are: {', '.join(declared)}"] for name in unknown}
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**errors, **exc.detail}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value
