"""REST API of proxy checks: create (201, 400 with field messages), team scoping and permissions with the actors,
cancel and delete, a constant number of queries for the list, the schema."""
from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from models_zoo.models import TrainingRun
from models_zoo.proxy_checks.models import ProxyCheck
from tests.models_zoo.proxy_checks.conftest import TINY_CONFIG, TINY_SPACE, TOKENS
from tests.models_zoo.proxy_checks.test_services import _finish

pytestmark = pytest.mark.django_db
URL = "/api/v1/proxy-checks/"


def _as(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def _body(dataset, **overrides):
    body = {"space": TINY_SPACE, "dataset": dataset.pk, "tokenizer": "bpe:300", "sample_size": 3,
            "max_tokens": TOKENS, "config": TINY_CONFIG, "name": "api check"}
    body.update(overrides)
    return body


def test_create_returns_the_check_with_its_models(api_client, actors, dataset, sent):
    response = _as(api_client, actors.bob).post(URL, _body(dataset, compare_budget=True), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["owner"] == "bob" and body["team_name"] == "acme" and body["status"] == "running"
    assert body["budgets"] == [TOKENS, 2 * TOKENS] and body["progress"] == {
        "queued": 6, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 6}
    assert len(body["models"]) == 3 and all(len(m["runs"]) == 2 for m in body["models"])
    assert body["result"]["sentence"].startswith("Not enough trained models yet") and len(sent) == 6


@pytest.mark.parametrize("change, field, text", [
    ({"sample_size": 2}, "sample_size", "greater than or equal to 3"),
    ({"max_tokens": None}, "max_tokens", "may not be null"),
    ({"preset": "tiny"}, "space", "give only one of preset, space"),
    ({"space": {**TINY_SPACE, "n_layer": []}}, "space.n_layer", "non-empty"),
    ({"config": {**TINY_CONFIG, "max_minutes": 5}}, "config.max_minutes", "budget is max_tokens"),
    ({"config": [1]}, "config", "JSON object"),
    ({"search": 999}, "search", "no such search"),
    ({"tokenizer": "words"}, "tokenizer", "unknown tokenizer"),
    ({"max_tokens": 10**30}, "max_tokens", "must be in [1, 1000000000000000]"),  # the issue: a 500 (out of range)
    ({"max_tokens": 10**15, "compare_budget": True}, "max_tokens", "must be in [1, 500000000000000]"),
    ({"config": {**TINY_CONFIG, "batch_size": 10**12}}, "config.batch_size", "must be at most 1,048,576"),
])
def test_mistakes_are_400_with_field_messages(api_client, actors, dataset, sent, change, field, text):
    response = _as(api_client, actors.alice).post(URL, _body(dataset, **change), format="json")
    assert response.status_code == 400
    assert text in " ".join(response.json().get(field, [])), response.json()
    assert not ProxyCheck.objects.exists() and not sent


@pytest.mark.parametrize("args, says", [
    (["--max-tokens", str(10**30)], "max_tokens: must be in [1, 1000000000000000]"),  # the 1e30: was a 500
    (["--max-tokens", "2048", "--seed", str(2**40)], "seed: must be in [0, 2147483647]"),
    (["--max-tokens", "2048", "--search", str(10**30)], "--search: an id is from 1 to"),
    (["--follow", "-1"], "--follow: an id is from 1 to"),
])
def test_the_command_gives_messages_for_numbers_beyond_the_limits(actors, dataset, sent, args, says):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as err:
        call_command("lts_proxy_check", "--space", json.dumps(TINY_SPACE), "--data", f"dataset:{dataset.pk}",
                     "--tokenizer", "bpe:300", "-k", "3", "--user", "alice", "--no-wait", *args)
    assert says in str(err.value)
    assert not ProxyCheck.objects.exists() and not sent


def test_an_outsider_can_use_neither_the_dataset_nor_the_check(api_client, actors, dataset, sent):
    response = _as(api_client, actors.charlie).post(URL, _body(dataset), format="json")
    assert response.status_code == 400 and "no such dataset" in response.json()["dataset"][0]
    check_id = _as(api_client, actors.alice).post(URL, _body(dataset), format="json").json()["id"]
    client = _as(api_client, actors.charlie)
    assert client.get(f"{URL}{check_id}/").status_code == 404
    assert client.post(f"{URL}{check_id}/cancel/").status_code == 404
    assert client.get(URL).json()["results"] == []


def test_a_teammate_reads_but_only_owner_or_admin_cancels(api_client, actors, dataset, sent):
    check_id = _as(api_client, actors.bob).post(URL, _body(dataset), format="json").json()["id"]
    # alice is acme's admin: she may cancel bob's check; a plain member may not cancel another's.
    alice_id = _as(api_client, actors.alice).post(URL, _body(dataset, name="alice's"), format="json").json()["id"]
    bob = _as(api_client, actors.bob)
    assert bob.get(f"{URL}{alice_id}/").status_code == 200
    assert bob.post(f"{URL}{alice_id}/cancel/").status_code == 403
    alice = _as(api_client, actors.alice)
    response = alice.post(f"{URL}{check_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["progress"]["cancelled"] == 3
    again = alice.post(f"{URL}{check_id}/cancel/")
    assert again.status_code == 409 and again.json() == {"detail": "cannot cancel a check that is cancelled"}


def test_delete_needs_a_finished_check_and_keeps_the_runs(api_client, actors, dataset, sent):
    client = _as(api_client, actors.alice)
    check_id = client.post(URL, _body(dataset), format="json").json()["id"]
    assert client.delete(f"{URL}{check_id}/").status_code == 409
    _finish(ProxyCheck.objects.get(pk=check_id))
    detail = client.get(f"{URL}{check_id}/").json()
    assert detail["status"] == "completed" and detail["result"]["budgets"][0]["n"] == 3
    assert client.delete(f"{URL}{check_id}/").status_code == 204
    assert TrainingRun.objects.count() == 3


def test_the_list_costs_the_same_queries_for_one_check_or_three(api_client, actors, dataset, sent):
    client = _as(api_client, actors.alice)
    first = client.post(URL, _body(dataset), format="json").json()["id"]
    _finish(ProxyCheck.objects.get(pk=first))

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    one = count()
    for name in ("b", "c"):
        client.post(URL, _body(dataset, name=name), format="json")
    client.get(URL)
    assert count() == one
    rows = client.get(URL).json()["results"]
    assert [r["name"] for r in rows] == ["c", "b", "api check"] and "models" not in rows[0]
    assert rows[2]["result"]["budgets"][0]["predictors"]["proxy"]["spearman"]["estimate"] == -1.0


def test_reads_write_nothing_and_show_what_the_workers_stored(api_client, client, actors, dataset, sent):
    """A GET of the API, the pages or the search page computes nothing: runs that finished without their check's
    update (its message still on its way) leave the check as stored until the update runs."""
    from searches import services as search_services
    from tests.searches.factories import spec

    api = _as(api_client, actors.alice)
    check_id = api.post(URL, _body(dataset), format="json").json()["id"]
    TrainingRun.objects.update(status="completed", val_ppl=10.0, val_loss=1.0)  # no update sent
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(objectives=["proxy"], device=None, space=TINY_SPACE))
    client.force_login(actors.alice)
    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL).json()["results"][0]["status"] == "running"
        assert api.get(f"{URL}{check_id}/").json()["status"] == "running"
        for page in ("/proxy-checks/", f"/proxy-checks/{check_id}/", f"/searches/{job.pk}/"):
            assert client.get(page).status_code == 200
    writes = [q["sql"] for q in queries if q["sql"].split(" ", 1)[0] in ("UPDATE", "INSERT", "DELETE")]
    assert writes == []
    assert ProxyCheck.objects.get(pk=check_id).status == "running"
    from models_zoo.proxy_checks import services

    services.do_update_proxy_check(check_id)  # what the message that is on its way does
    assert api.get(f"{URL}{check_id}/").json()["status"] == "completed"
