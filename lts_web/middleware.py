"""Login required everywhere, except views marked @login_not_required and the REST API; bad input answered as such.

The API authenticates inside DRF (token or session) and answers 401/403 itself: a redirect to an HTML
login page would be wrong for a script.
"""
from __future__ import annotations

from urllib.parse import unquote, unquote_to_bytes

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as _DjangoLoginRequired
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpResponse, JsonResponse

from lts_web.params import BadQuery


class LoginRequiredMiddleware(_DjangoLoginRequired):
    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def bad_input_response(request, errors: dict[str, str]) -> HttpResponse:
    """``errors`` (field -> message) as the API answers them ({"field": ["message"]}), or as text on a page."""
    if _is_api(request):
        return JsonResponse({k: [v] for k, v in errors.items()}, status=400)
    return HttpResponse("".join(f"{k}: {v}\n" for k, v in errors.items()), content_type="text/plain", status=400)


class BadInputMiddleware:
    """A 400 naming the field, never a 500 or an HTML page for an API client, for input nothing further can hold:

    - a NUL character in the path, the query string or a header (PostgreSQL refuses it in text: a 500 at the first query that
      uses the value; SQLite stores it);
    - lts_web.params.BadQuery raised by a view (an id that is not one);
    - under /api/, a body over DATA_UPLOAD_MAX_MEMORY_SIZE (413) and Django's other refusals of a request
      (SuspiciousOperation: too many fields, ...) as JSON instead of Django's HTML 400 page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        errors: dict[str, str] = {}
        if "\x00" in request.path_info:
            errors["path"] = "must not contain a NUL character (%00)"
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query:
            for pair in query.split("&"):
                if b"\x00" in unquote_to_bytes(pair):
                    name = unquote(pair.partition("=")[0].replace("+", " ")).replace("\x00", "%00")
                    errors[name] = "must not contain a NUL character (%00)"
        for key, value in request.META.items():  # an Authorization header reaches the token lookup's query
            if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                errors[f"header {key[5:].replace('_', '-').title()}"] = "must not contain a NUL character"
        if errors:
            return bad_input_response(request, errors)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, BadQuery):
            return bad_input_response(request, exception.errors)
        if not _is_api(request) or not isinstance(exception, SuspiciousOperation):
            return None
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse({"detail": f"the request body is over {limit:,} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); "
                                           "files go in multipart/form-data uploads"}, status=413)
        return JsonResponse({"detail": str(exception) or type(exception).__name__}, status=400)
