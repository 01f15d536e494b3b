"""Who may see and change what: a user sees their teams' jobs; only the owner or a team admin changes one."""
from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission

from lts_web.models import Membership
from searches.models import SearchJob


def visible_searches(user) -> QuerySet[SearchJob]:
    return SearchJob.objects.filter(team__memberships__user=user)


def can_change(user, job: SearchJob) -> bool:
    if job.owner_id == user.id:
        return True
    return Membership.objects.filter(user=user, team_id=job.team_id, role=Membership.Role.ADMIN).exists()


class CanChangeSearch(BasePermission):
    """Reads for every team member (the queryset already hides other teams' jobs: they get 404)."""

    message = "only the owner of this search or an admin of its team may change it"

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS or getattr(view, "action", None) == "clone":
            return True
        return can_change(request.user, obj)
