from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from knox.models import AuthToken

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/account/"])
def test_pages_redirect_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")


def test_login_page_is_public(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_login_then_home_lists_the_users_teams(client, actors):
    response = client.post("/login/", {"username": "bob", "password": "bob-password-1"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "acme" in page and "alice" in page
    assert "other" not in page  # charlie's team


def test_api_needs_authentication(api_client):
    response = api_client.get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert "credentials were not provided" in response.json()["detail"]


def test_api_token_auth_and_team_scoping(api_client, actors):
    _, key = AuthToken.objects.create(user=actors.bob)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    me = api_client.get("/api/v1/me/").json()
    assert me["username"] == "bob"
    assert me["teams"] == [{"id": actors.acme.id, "name": "acme", "role": "member"}]
    teams = api_client.get("/api/v1/teams/").json()["results"]
    assert [t["name"] for t in teams] == ["acme"]
    assert api_client.get(f"/api/v1/teams/{actors.other.id}/").status_code == 404


def _me(api_client, key: str) -> int:
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api_client.get("/api/v1/me/").status_code


def test_obtain_token_with_password(api_client, actors):
    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    key = response.json()["token"]
    assert _me(api_client, key) == 200
    # stored as a digest, with an expiry LTS_TOKEN_TTL_DAYS (30) ahead
    row = AuthToken.objects.get(user=actors.alice)
    assert key not in (row.digest, row.token_key) and len(row.digest) == 128
    assert timedelta(days=29) < row.expiry - timezone.now() <= timedelta(days=30)
    api_client.credentials()
    bad = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 400
    assert "non_field_errors" in bad.json()


def test_an_expired_token_is_refused(api_client, actors):
    row, key = AuthToken.objects.create(user=actors.alice, expiry=timedelta(days=1))
    assert _me(api_client, key) == 200
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _me(api_client, key) == 401


def test_account_page_issues_a_new_token_shown_once(client, api_client, actors):
    client.force_login(actors.alice)
    _, old = AuthToken.objects.create(user=actors.alice)
    response = client.post("/account/")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    new = response.context["new_key"]
    assert f"Authorization: Token {new}" in response.content.decode()
    assert _me(api_client, new) == 200 and _me(api_client, old) == 401
    assert new not in client.get("/account/").content.decode()  # only its digest is kept


def test_logging_out_revokes_tokens(client, api_client, actors):
    first, second = AuthToken.objects.create(user=actors.bob)[1], AuthToken.objects.create(user=actors.bob)[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert api_client.post("/api/v1/auth/logout/").status_code == 204  # the token it is sent with
    assert _me(api_client, first) == 401 and _me(api_client, second) == 200
    client.force_login(actors.bob)
    assert client.post("/logout/").status_code == 302  # the pages: all of the user's tokens
    assert _me(api_client, second) == 401


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_login_page_locks_out_after_wrong_passwords(client, actors):
    for _ in range(2):
        assert client.post("/login/", {"username": "bob", "password": "wrong"}).status_code == 200
    assert client.post("/login/", {"username": "bob", "password": "wrong"}).status_code == 429  # the 3rd locks
    response = client.post("/login/", {"username": "bob", "password": "bob-password-1"})  # the right one, too late
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # another user from the same address is not locked out
    assert client.post("/login/", {"username": "alice", "password": "alice-password-1"}).status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=timedelta(seconds=120))
def test_the_token_endpoint_locks_out_after_wrong_passwords(api_client, actors):
    for _ in range(2):
        assert api_client.post("/api/v1/auth/token/", {"username": "bob", "password": "wrong"}).status_code == 400
    assert api_client.post("/api/v1/auth/token/", {"username": "bob", "password": "wrong"}).status_code == 429
    response = api_client.post("/api/v1/auth/token/", {"username": "bob", "password": "bob-password-1"})
    assert response.status_code == 429
    assert response["Retry-After"] == "120"
    assert "Too many failed logins" in response.json()["detail"]
    assert not AuthToken.objects.filter(user=actors.bob).exists()


def test_schema_and_docs_are_public(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200


def test_teams_list_runs_a_bounded_number_of_queries(api_client, actors, django_assert_max_num_queries):
    from lts_web.services import do_create_team

    for i in range(10):
        do_create_team(f"team-{i}", actors.alice)
    api_client.force_authenticate(actors.alice)
    with django_assert_max_num_queries(4):
        response = api_client.get("/api/v1/teams/")
    assert response.json()["count"] == 11


def test_demo_user_command_prints_password_once(capsys):
    from django.core.management import call_command

    call_command("lts_demo_user")
    first = capsys.readouterr().out
    call_command("lts_demo_user")
    second = capsys.readouterr().out
    assert "Log in as  demo / " in first
    assert "exists" in second and "Log in as" not in second
