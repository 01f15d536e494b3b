"""Input nothing further can hold is a 400 (413 for a body too large) naming the field, never a 500: page sizes, ids
in query strings, NUL characters, lone surrogates and deep nesting in JSON, unknown fields, oversized bodies. Run once
on PostgreSQL too (DATABASE_URL): it refuses NUL in text where SQLite stores it."""
from __future__ import annotations

import json

import pytest

from lts_web.params import BadQuery, parse_int, query_id, query_ids

pytestmark = pytest.mark.django_db

LISTS = ["searches", "candidates", "measurements", "devices", "teams", "datasets", "training-runs", "zoo-models",
         "proxy-checks"]
TOO_BIG = "9223372036854775808"  # 2**63


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(api_client, actors):
    api_client.force_authenticate(actors.alice)
    return api_client


@pytest.fixture
def rows(actors):
    """A row in every list (devices, teams, searches...), so that a page is read from the database."""
    from searches import services
    from searches.models import Device
    from tests.searches.factories import spec

    Device.objects.create(name="edge-1", backends=["torch"])
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="s", spec=spec())
    services.do_advance_search(job.pk)  # its first candidates and their pending measurements
    return job


@pytest.mark.parametrize("text, expected", [
    ("1", 1), ("0042", 42), (str(2**63 - 1), 2**63 - 1), (TOO_BIG, None), ("²", None), ("٣", None), ("-1", None),
    ("+1", None), (" 1", None), ("1.0", None), ("", None), ("1" * 400, None),
])
def test_parse_int_takes_ascii_digits_within_bigint_only(text, expected):
    assert parse_int(text) == expected


def test_query_ids_report_the_field_and_skip_empty_items():
    assert query_id({"job": ""}, "job") is None and query_id({}, "job") is None
    assert query_ids(["1,2", "", "3,"], "models") == [1, 2, 3]
    with pytest.raises(BadQuery) as caught:
        query_ids(["1,²"], "models")
    assert list(caught.value.errors) == ["models"]
    errors: dict[str, str] = {}
    assert query_id({"job": "0"}, "job", errors=errors) is None and "job" in errors


@pytest.mark.parametrize("query, fields", [
    (f"limit={TOO_BIG}", {"limit"}), ("limit=9223372036854775807", {"limit"}), ("limit=0", {"limit"}),
    ("limit=-1", {"limit"}), ("limit=abc", {"limit"}), ("limit=%C2%B2", {"limit"}), ("offset=-1", {"offset"}),
    (f"offset={TOO_BIG}", {"offset"}), ("limit=x&offset=y", {"limit", "offset"}),
])
def test_every_list_refuses_a_bad_page_with_its_field(alice, rows, query, fields):
    for name in LISTS:
        response = alice.get(f"/api/v1/{name}/?{query}")
        assert response.status_code == 400, (name, response.content)
        assert set(response.json()) == fields


@pytest.mark.parametrize("name, largest", [("searches", 1000), ("teams", 1000), ("candidates", 20_000)])
def test_pages_have_a_maximum_size(alice, rows, name, largest):
    assert alice.get(f"/api/v1/{name}/?limit={largest}&offset={2**63 - 1}").json()["results"] == []
    assert alice.get(f"/api/v1/{name}/?limit={largest}").status_code == 200
    assert alice.get(f"/api/v1/{name}/?limit={largest + 1}").status_code == 400
    assert alice.get(f"/api/v1/{name}/?limit=&offset=").status_code == 200  # empty: the defaults


def test_the_schema_states_the_page_bounds(alice):
    schema = alice.get("/api/schema/?format=json").json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/searches/"]["get"]["parameters"]}
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert parameters["offset"]["minimum"] == 0


@pytest.mark.parametrize("url, field", [
    ("/api/v1/candidates/?job=%C2%B2", "job"), ("/api/v1/candidates/?job=0", "job"),
    (f"/api/v1/candidates/?job={TOO_BIG}", "job"), ("/api/v1/candidates/?job=1&after=%C2%B2", "after"),
    (f"/api/v1/candidates/?job=1&after={TOO_BIG}", "after"), ("/api/v1/candidates/?after=1", "job"),
    ("/api/v1/candidates/?job=1&after=1&hypervolumes_from=-1", "hypervolumes_from"),
    ("/api/v1/training-runs/?candidate=%C2%B2", "candidate"), ("/api/v1/searches/?team=%C2%B2", "team"),
    ("/api/v1/proxy-checks/?search=%C2%B2", "search"),
])
def test_api_ids_in_the_query_are_read_strictly(alice, rows, url, field):
    response = alice.get(url.replace("job=1", f"job={rows.pk}"))
    assert response.status_code == 400 and response["Content-Type"] == "application/json", response.content
    assert field in response.json()


@pytest.mark.parametrize("url, field", [
    ("/?team=%C2%B2", "team"), (f"/?team={TOO_BIG}", "team"), ("/zoo/playground/?models=1,%C2%B2", "models"),
    ("/zoo/train/?candidate=%C2%B2", "candidate"), (f"/zoo/train/?candidates=1,{TOO_BIG}", "candidates"),
    ("/proxy-checks/?search=%C2%B2", "search"),
])
def test_page_ids_in_the_query_are_read_strictly(client, actors, url, field):
    client.force_login(actors.alice)
    response = client.get(url)
    assert response.status_code == 400
    assert response.content.decode().startswith(f"{field}: must be")


def test_good_ids_still_filter(client, alice, actors, rows):
    client.force_login(actors.alice)
    assert client.get(f"/?team={actors.acme.pk}").status_code == 200
    assert alice.get(f"/api/v1/candidates/?job={rows.pk}").json()["count"] == rows.candidates.count() > 0
    assert alice.get(f"/api/v1/candidates/?job={rows.pk}&after=0&hypervolumes_from=0").status_code == 200


@pytest.mark.parametrize("url, field", [
    ("/api/v1/searches/?owner=%00", "owner"), ("/api/v1/searches/?owner=a%00b&status=x", "owner"),
    ("/api/v1/devices/a%00b/", "path"), ("/api/v1/candidates/?archid=%00", "archid"),
])
def test_nul_in_an_api_query_or_path_is_a_400(alice, rows, url, field):
    response = alice.get(url)
    assert response.status_code == 400, response.content
    assert response.json() == {field: ["must not contain a NUL character (%00)"]}


def test_nul_in_a_page_path_or_query_is_a_400(client, actors, rows):
    client.force_login(actors.alice)
    for url in (f"/searches/{rows.pk}/candidates/%00/", "/?owner=%00"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert "NUL" in response.content.decode()


def test_nul_in_a_header_is_a_400_before_the_token_lookup(client):
    # PostgreSQL refuses NUL in text: the token authentication's query would raise (a 500) on a header like this one.
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert response.status_code == 400
    assert response.json() == {"header Authorization": ["must not contain a NUL character"]}


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "preset": "tiny", "objectives": ["proxy"], "space\u0000": 1}, "space\\u0000"),
    ({"name": "a\u0000b", "preset": "tiny", "objectives": ["proxy"]}, "name"),
    ({"name": "x", "space": {"n_layer": [1], "d_\u0000": [2]}}, "space.d_\\u0000"),
    ({"name": "x", "objectives": ["proxy", "\ud800"]}, "objectives.1"),
])
def test_nul_and_lone_surrogates_in_json_are_400s_naming_where(alice, body, field):
    response = alice.post("/api/v1/searches/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def _nested_body(levels: int) -> str:
    """A search body whose "params" holds lists nested to ``levels`` levels in all (the body's object is the first)."""
    lists = levels - 2  # the body and params are two
    return '{"name": "deep", "preset": "tiny", "params": {"init_population": ' + "[" * lists + "]" * lists + "}}"


def test_nesting_is_bounded(alice):
    legal = alice.post("/api/v1/searches/", _nested_body(64), content_type="application/json")
    assert legal.status_code == 400 and "params.init_population" in legal.json()  # read, then refused as a value
    for levels in (65, 100_000):
        response = alice.post("/api/v1/searches/", _nested_body(levels), content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"detail": "JSON parse error - nested deeper than 64 levels"}


def test_a_body_over_the_memory_limit_is_a_json_413(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = alice.post("/api/v1/searches/", json.dumps({"name": "x" * 2000}), content_type="application/json")
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]


def test_a_dataset_upload_larger_than_the_memory_limit_still_works(alice, actors, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.LTS_DATA_ROOT = tmp_path
    text = ("the quick brown fox jumps over the lazy dog\n" * 200).encode()
    upload = SimpleUploadedFile("fox.txt", text, content_type="text/plain")
    response = alice.post("/api/v1/datasets/", {"name": "fox", "kind": "upload", "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["size_bytes"] == len(text)


@pytest.mark.parametrize("url, body, field", [
    ("/api/v1/searches/", {"name": "x", "preset": "tiny", "objectives": ["proxy"], "generations": 3}, "generations"),
    ("/api/v1/proxy-checks/", {"dataset": 1, "max_tokens": 10, "preset": "tiny", "max_token": 5}, "max_token"),
    ("/api/v1/training-runs/", {"dataset": 1, "tokenizer": "bpe:300", "max_step": 5}, "max_step"),
])
def test_unknown_top_level_fields_are_refused(alice, url, body, field):
    response = alice.post(url, body, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [response.json()[field][0]] and "unknown field" in response.json()[field][0]


def test_unknown_fields_are_reported_beside_the_other_fields(alice):
    response = alice.post("/api/v1/searches/", {"name": "", "seed": "x", "surprise": 1}, format="json")
    assert response.status_code == 400
    # and the spec's own errors with them (no preset or space, no device), not after the name is filled
    assert set(response.json()) == {"name", "seed", "surprise", "preset", "device"}
