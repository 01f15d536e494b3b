"""GET /api/v1/ lists every top-level endpoint of the API with a line on what it holds, and each answers."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db
ROOT = "/api/v1/"
# Endpoints that only take a POST (a GET is 405).
POST_ONLY = {"auth/token/", "auth/logout/", "auth/logoutall/", "architectures/preview/", "spaces/preview/"}


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).replace("^", "").replace("$", "")
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _top_level() -> set[str]:
    """The API's fixed routes (no id, no format suffix) that are not below another: "searches/", "auth/token/"."""
    fixed = {r[len(ROOT) - 1:] for r in _routes(get_resolver().url_patterns)
             if r.startswith(ROOT[1:]) and re.fullmatch(r"[\w/-]+/", r[len(ROOT) - 1:])}
    return {r for r in fixed if not any(r != other and r.startswith(other) for other in fixed)}


@pytest.fixture
def alice(api_client, actors):
    api_client.force_authenticate(actors.alice)
    return api_client


def test_the_root_lists_every_top_level_endpoint_with_what_it_holds(alice):
    response = alice.get(ROOT)
    assert response.status_code == 200
    body = response.json()
    listed = {urlsplit(entry["url"]).path for entry in body.values()}
    expected = {ROOT + route for route in _top_level()}
    assert {"searches/", "presets/", "datasets/", "training-runs/", "zoo-models/", "zoo-imports/", "proxy-checks/",
            "webhooks/", "teams/", "auth/token/", "me/"} <= _top_level()  # the walk finds them
    assert expected <= listed, expected - listed
    for name, entry in body.items():
        assert entry["description"].strip() and "\n" not in entry["description"], name
        assert entry["url"].startswith("http://testserver/"), name


def test_every_listed_endpoint_answers_a_signed_in_user(alice):
    for name, entry in alice.get(ROOT).json().items():
        path = urlsplit(entry["url"]).path
        expected = 405 if path[len(ROOT) - 1:].lstrip("/") in POST_ONLY else 200
        assert alice.get(path).status_code == expected, (name, path)


def test_the_browsable_root_says_what_the_api_is(alice):
    page = alice.get(ROOT, HTTP_ACCEPT="text/html").content.decode()
    assert "The default basic root view for DefaultRouter" not in page
    assert "LTS Studio" in page and "training-runs" in page


def test_anonymous_gets_no_list(api_client, actors):
    assert api_client.get(ROOT).status_code in (401, 403)
