"""Every state change of accounts and teams goes through a do_* function (STYLE.md)."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from knox.models import AuthToken

from lts_web.models import Membership, Team

__all__ = ["do_add_member", "do_create_team", "do_ensure_demo_user", "do_regenerate_token", "do_revoke_tokens"]


@transaction.atomic
def do_create_team(name: str, admin) -> Team:
    team = Team.objects.create(name=name)
    Membership.objects.create(user=admin, team=team, role=Membership.Role.ADMIN)
    return team


def do_add_member(team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"role": role})
    return membership


@transaction.atomic
def do_regenerate_token(user) -> tuple[AuthToken, str]:
    """Revoke the user's API tokens and issue one: (its row, its key; only the key's digest is stored)."""
    do_revoke_tokens(user)
    return AuthToken.objects.create(user=user)


def do_revoke_tokens(user) -> int:
    """Every API token of the user stops working (logging out, a new token from /account/). Returns how many."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


@transaction.atomic
def do_ensure_demo_user(username: str = "demo") -> tuple[object, str | None]:
    """Create the demo user (staff, admin of team "demo") once. Returns (user, password or None if it existed)."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, password=password, is_staff=True, is_superuser=True)
    team = Team.objects.filter(name="demo").first() or Team.objects.create(name="demo")
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    return user, password
