"""The API's page parameters: ``limit`` from 1 to a maximum page size, ``offset`` from 0; anything else is a 400 with
the field's message (DRF's LimitOffsetPagination took any size: ?limit=2**63 was a 500 from the database, and
?limit=2**63-1 returned every row)."""
from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

from lts_web.params import MAX_ID, parse_int

__all__ = ["LimitOffsetPagination"]


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    max_limit = 1000

    def _bounds(self) -> dict[str, tuple[int, int]]:
        return {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, MAX_ID)}

    def _read(self, request) -> dict[str, int]:
        """Both parameters (those given), or a 400 with each bad one's message."""
        values, errors = {}, {}
        for name, (low, high) in self._bounds().items():
            text = request.query_params.get(name)
            if not text:  # absent or empty: the default
                continue
            value = parse_int(text, low, high)
            if value is None:
                errors[name] = [f"must be a whole number from {low} to {high}, got {text[:40]!r}"]
            values[name] = value
        if errors:
            raise ValidationError(errors)
        return values

    def paginate_queryset(self, queryset, request, view=None):
        self._read(request)  # both messages at once, before the base class reads either
        return super().paginate_queryset(queryset, request, view)

    def get_limit(self, request):
        return self._read(request).get(self.limit_query_param, self.default_limit)

    def get_offset(self, request):
        return self._read(request).get(self.offset_query_param, 0)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            low, high = self._bounds()[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters
