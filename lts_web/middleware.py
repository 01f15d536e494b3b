"""Login required everywhere, except views marked @login_not_required and the REST API.

The API authenticates inside DRF (token or session) and answers 401/403 itself: a redirect to an HTML
login page would be wrong for a script.
"""
from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware as _DjangoLoginRequired


class LoginRequiredMiddleware(_DjangoLoginRequired):
    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
