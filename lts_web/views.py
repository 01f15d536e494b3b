"""Pages and endpoints of the project shell: teams, account (API token), logout, health, the icon."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_http_methods
from knox.models import AuthToken
from knox.settings import knox_settings

from lts_web.health import check_broker, check_database
from lts_web.models import Membership
from lts_web.services import do_regenerate_token, do_revoke_tokens


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


# The site's icon, the accent colour with a white Pareto staircase: a few bytes served from here rather than a file.
# Pages that link no icon (the browsable API, the admin) have the browser ask for /favicon.ico.
FAVICON_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
               'fill="#0969da"/><path d="M8 7v11h7v6h10" fill="none" stroke="#fff" stroke-width="3.5" '
               'stroke-linecap="round" stroke-linejoin="round"/></svg>')


@login_not_required
@cache_control(max_age=86400, public=True)
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON_SVG, content_type="image/svg+xml")


@require_GET
def teams(request: HttpRequest) -> HttpResponse:
    """The user's teams and their members (the home page is the searches dashboard, searches.views)."""
    memberships = (
        Membership.objects.filter(user=request.user).select_related("team").prefetch_related("team__memberships__user")
    )
    return render(request, "lts_web/teams.html", {"memberships": memberships})


@never_cache
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The user's API tokens; POST issues a new one (the others are revoked) and shows its key this once: only its
    digest is stored. Rendered, not redirected: a message would keep the key in the session's cookie."""
    new_key = None
    if request.method == "POST":
        _, new_key = do_regenerate_token(request.user)
        messages.success(request, "A new API token was issued; the old ones no longer work.")
    tokens = AuthToken.objects.filter(user=request.user, expiry__gt=timezone.now()).order_by("-created")
    return render(request, "lts_web/account.html", {"tokens": tokens, "new_key": new_key,
                                                         "ttl_days": knox_settings.TOKEN_TTL.days})


class LogoutView(auth_views.LogoutView):
    """Logging out of the pages also revokes the user's API tokens (a script's too: get a new one after)."""

    def post(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            do_revoke_tokens(request.user)
        return super().post(request, *args, **kwargs)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a JSON body under /api/ (what every API client parses), the plain 404 page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
