"""Abuse limits: per-user rates of the requests that start work (DRF throttles, also applied to the pages' forms) and
the response to a login locked out by django-axes. Both answer 429 with Retry-After.

The counts live where every web process sees them: DRF's throttles in the default cache (Redis), axes' failed
attempts in the database.
"""
from __future__ import annotations

import math
from functools import wraps

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

__all__ = ["GenerateThrottle", "TokenThrottle", "PredictThrottle", "StartWorkThrottle", "StartWorkThrottled", "lockout_response",
           "throttle_start_work"]


class _ScopeRateThrottle(UserRateThrottle):
    """UserRateThrottle for one named scope, its rate read at each request (so that a test's override_settings of
    REST_FRAMEWORK applies; DRF's class attribute keeps the rates of import time)."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class StartWorkThrottle(_ScopeRateThrottle):
    """Creating, cloning or retrying a search, a training run, a proxy check, a dataset, an import."""

    scope = "start_work"


class GenerateThrottle(_ScopeRateThrottle):
    """A generation (the playground, /api/v1/models/<id>/generate)."""

    scope = "generate"


class PredictThrottle(_ScopeRateThrottle):
    """Predictions of a device's cost model (/api/v1/devices/<name>/predict/): milliseconds each, but up to 1,000
    architectures and possibly a refit per request."""

    scope = "predict"


class TokenThrottle(_ScopeRateThrottle):
    """New API tokens (POST /api/v1/auth/token/), per client address: each stores a row until it expires, so a loop
    that logs in again and again would grow the table without bound."""

    scope = "token"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class StartWorkThrottled:
    """ViewSet mixin: the actions named in `start_work_actions` count against the caller's start_work rate."""

    start_work_actions: tuple[str, ...] = ("create",)

    def get_throttles(self):
        throttles = super().get_throttles()
        if getattr(self, "action", None) in self.start_work_actions:
            throttles.append(StartWorkThrottle())
        return throttles


def _too_many(request: HttpRequest, wait_s: float, message: str) -> HttpResponse:
    retry_after = max(1, math.ceil(wait_s))
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": f"{message} Try again in {retry_after} seconds."}, status=429)
    else:
        response = render(request, "429.html", {"message": message, "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def throttle_start_work(view):
    """View decorator for a page whose form starts work (it calls the service, not the API): each POST counts against
    the user's start_work rate, the same count as the API's; beyond it, the 429 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            throttle = StartWorkThrottle()
            if not throttle.allow_request(request, None):
                return _too_many(request, throttle.wait() or 1, "You have started work too often.")
        return view(request, *args, **kwargs)

    return wrapper


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE, and the token endpoint's answer when axes refused the login."""
    return _too_many(request, get_cool_off(request).total_seconds(), "Too many failed logins.")
