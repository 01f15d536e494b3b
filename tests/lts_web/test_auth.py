from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

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
    token = Token.objects.create(user=actors.bob)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    me = api_client.get("/api/v1/me/").json()
    assert me["username"] == "bob"
    assert me["teams"] == [{"id": actors.acme.id, "name": "acme", "role": "member"}]
    teams = api_client.get("/api/v1/teams/").json()["results"]
    assert [t["name"] for t in teams] == ["acme"]
    assert api_client.get(f"/api/v1/teams/{actors.other.id}/").status_code == 404


def test_obtain_token_with_password(api_client, actors):
    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=actors.alice).key
    bad = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 400
    assert "non_field_errors" in bad.json()


def test_account_page_issues_a_new_token(client, actors):
    client.force_login(actors.alice)
    old = Token.objects.create(user=actors.alice).key
    response = client.post("/account/", follow=True)
    new = Token.objects.get(user=actors.alice).key
    assert new != old
    assert new in response.content.decode()


def test_schema_and_docs_are_public(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


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
