"""Pages and endpoints of the project shell: teams, account (API token), health."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from rest_framework.authtoken.models import Token

from lts_web.health import check_broker, check_database
from lts_web.models import Membership
from lts_web.services import do_regenerate_token


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming the one(s) that did not."""
    checks = {"database": check_database(), "broker": check_broker()}
    failed = {name: reason for name, reason in checks.items() if reason}
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: ("ok" if not reason else f"failed: {reason}") for name, reason in checks.items()},
    }
    return JsonResponse(body, status=503 if failed else 200)


@require_GET
def teams(request: HttpRequest) -> HttpResponse:
    """The user's teams and their members (the home page is the searches dashboard, searches.views)."""
    memberships = (
        Membership.objects.filter(user=request.user).select_related("team").prefetch_related("team__memberships__user")
    )
    return render(request, "lts_web/teams.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        do_regenerate_token(request.user)
        messages.success(request, "A new API token was issued; the old one no longer works.")
        return redirect("account")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "lts_web/account.html", {"token": token})
