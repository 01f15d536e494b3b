"""Accounts: teams. A user belongs to one or more teams; jobs, models and results are shared within a team."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import QuerySet


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"  # may change and delete every job and model of the team
        MEMBER = "member", "Member"  # sees everything of the team, changes only what they own

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="unique_membership")]
        ordering = ["team__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def teams_of(user) -> QuerySet[Team]:
    """The teams whose results `user` may see."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def is_team_admin(user, team_id: int) -> bool:
    return Membership.objects.filter(user=user, team_id=team_id, role=Membership.Role.ADMIN).exists()
