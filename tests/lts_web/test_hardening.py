"""Rate limits on work-starting requests, the Content-Security-Policy, the API docs offline, plain 404/500 pages with
DEBUG off, and the move of plaintext API tokens to hashed ones."""
from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.test import override_settings
from django.urls import path

from lts_web import urls as site_urls

pytestmark = pytest.mark.django_db


def _rates(**rates):
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates})


def test_starting_work_beyond_the_users_rate_is_429_with_retry_after(api_client, client, actors):
    api_client.force_authenticate(actors.bob)
    with _rates(start_work="3/hour", generate="1/min"):
        # refused bodies count too: the rate is of requests that ask for work
        assert api_client.post("/api/v1/searches/", {}, format="json").status_code == 400
        assert api_client.post("/api/v1/training-runs/", {}, format="json").status_code == 400
        client.force_login(actors.bob)
        assert client.post("/zoo/import/", {}).status_code == 400  # a page's form: the same count as the API's
        refused = api_client.post("/api/v1/proxy-checks/", {}, format="json")
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 3600
        page = client.post("/proxy-checks/", {})
        assert page.status_code == 429 and 0 < int(page["Retry-After"]) <= 3600
        assert "You have started work too often" in page.content.decode()
        # reading, and other users, are not limited
        assert api_client.get("/api/v1/searches/").status_code == 200
        assert client.get("/proxy-checks/").status_code == 200
        api_client.force_authenticate(actors.alice)
        assert api_client.post("/api/v1/searches/", {}, format="json").status_code == 400
        # generation has a rate of its own
        assert api_client.post("/api/v1/models/999999/generate", {}, format="json").status_code == 404
        limited = api_client.post("/api/v1/models/999999/generate", {}, format="json")
        assert limited.status_code == 429 and int(limited["Retry-After"]) <= 60


def test_pages_carry_a_csp_whose_nonce_is_on_their_inline_scripts(client, actors):
    from searches import services
    from searches.models import Device
    from tests.searches.factories import spec

    Device.objects.create(name="edge-1")
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="csp", spec=spec())
    client.force_login(actors.alice)
    response = client.get(f"/searches/{job.pk}/")  # an inline script in its head
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "default-src 'self'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script([^>]*)>", response.content.decode())
    # json_script's tags are data, not scripts
    inline = [attrs for attrs in scripts if "src=" not in attrs and "application/json" not in attrs]
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
    assert not re.search(r"\son[a-z]+=", response.content.decode())  # no inline event handlers
    # eval only where Plotly's WebGL charts need it (regl): a search's page
    assert "'unsafe-eval'" in policy and "'unsafe-eval'" not in client.get("/zoo/")["Content-Security-Policy"]


@pytest.mark.parametrize("url", ["/api/docs/", "/api/docs/?script=", "/api/redoc/"])
def test_api_docs_load_nothing_from_another_host(client, url):
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", body), body
    assert "fonts.googleapis" not in body and "cdn.jsdelivr" not in body
    if url != "/api/docs/?script=":
        assert "/static/drf_spectacular_sidecar/" in body
    if url == "/api/docs/":
        assert '<script src="/api/docs/?script="></script>' in body  # its set-up script: a file, not inline


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom/", login_not_required(_boom)), *site_urls.urlpatterns]


def test_new_tokens_beyond_the_rate_of_an_address_are_429(api_client, django_user_model):
    django_user_model.objects.create_user("carol", password="a-long-password-1")
    body = {"username": "carol", "password": "a-long-password-1"}
    with _rates(token="2/hour"):
        assert api_client.post("/api/v1/auth/token/", body).status_code == 200
        assert api_client.post("/api/v1/auth/token/", body).status_code == 200
        refused = api_client.post("/api/v1/auth/token/", body)
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 3600
    from knox.models import AuthToken

    assert AuthToken.objects.filter(user__username="carol").count() == 2


@override_settings(DEBUG=False)
def test_a_missing_id_is_the_plain_404_page(client, actors):
    client.force_login(actors.alice)
    response = client.get("/searches/999999/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Not found" in body and "LTS Studio" in body
    assert "URLconf" not in body and "searches/&lt;int:pk&gt;" not in body and "api/v1/" not in body


@override_settings(DEBUG=False)
def test_an_unknown_api_path_is_a_json_404(client, actors):
    client.force_login(actors.alice)
    response = client.get("/api/v1/nonexistent/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@override_settings(DEBUG=False, ROOT_URLCONF=__name__)
def test_an_error_is_the_plain_500_page(client, django_assert_num_queries):
    client.raise_request_exception = False
    with django_assert_num_queries(0):  # no database, no user: rendered when anything may be down
        response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Server error" in body and "RuntimeError" not in body and "Traceback" not in body


@pytest.mark.django_db(transaction=True)
def test_plaintext_tokens_are_hashed_by_the_migration_and_keep_working(api_client, django_user_model):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from knox.models import AuthToken

    user = django_user_model.objects.create_user("script", password="script-password-1")
    executor = MigrationExecutor(connection)
    executor.migrate([("lts_web", "0001_initial")])
    key = "0123456789abcdef0123456789abcdef01234567"  # rest_framework.authtoken's 40 hex characters
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamp NOT NULL, '
                       'user_id bigint NOT NULL)')
        cursor.execute('INSERT INTO authtoken_token ("key", created, user_id) VALUES (%s, %s, %s)',
                       [key, "2025-01-01 00:00:00", user.pk])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert "authtoken_token" not in connection.introspection.table_names()
    row = AuthToken.objects.get(user=user)
    assert key not in (row.digest, row.token_key) and row.expiry is not None
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/v1/me/").json()["username"] == "script"
