"""Who may see and change what: a team's datasets, runs and models are visible to its members; the owner or a team
admin changes them (as searches: searches.permissions.can_change)."""
from __future__ import annotations

from django.db.models import Model, QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission

from searches.permissions import can_change

__all__ = ["CanChange", "can_change", "visible"]


def visible(model: type[Model], user) -> QuerySet:
    """Rows of ``model`` (any of Dataset, TrainingRun, ZooModel) in the user's teams."""
    return model.objects.filter(team__memberships__user=user)


class CanChange(BasePermission):
    """Reads for every team member (the queryset already hides other teams' rows: they get 404)."""

    message = "only the owner or an admin of its team may change it"

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or can_change(request.user, obj)
