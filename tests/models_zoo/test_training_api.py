"""REST API of training runs: everything a worker would trip over is a 400 at submit, team permissions, cancel,
bounded query counts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models_zoo import services
from models_zoo.models import TrainingRun
from searches import services as search_services
from searches.core.arch import Architecture
from searches.models import Candidate
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH
from tests.searches.factories import spec

pytestmark = pytest.mark.django_db

GPT2_BPE = Path("/work/shared/data/gpt2-bpe")


def _client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def _body(ds, **overrides):
    body = {"architecture": TINY_ARCH, "dataset": ds.pk, "tokenizer": "bpe:400", "config": FAST_CONFIG}
    body.update(overrides)
    return body


def test_create_a_run_from_a_pasted_architecture(api_client, actors, dataset, sent):
    response = _client(api_client, actors.bob).post("/api/v1/training-runs/", _body(dataset, name="first"),
                                                    format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["owner"] == "bob" and body["team_name"] == "acme"
    assert body["archid"] == Architecture.from_dict(TINY_ARCH).archid and body["total_steps"] == 30
    assert body["config"]["lr"] == 3e-3 and "device" not in body["config"]  # the worker picks cpu or cuda
    assert body["dataset_name"] == "kings" and body["history"] == [] and body["zoo_model"] is None
    assert sent and sent[0]["args"] == [body["id"]]


def test_budget_may_sit_at_the_top_level(api_client, actors, dataset, sent):
    config = {k: v for k, v in FAST_CONFIG.items() if k != "max_steps"}
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(
        dataset, config=config, max_tokens=4096), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["config"]["max_tokens"] == 4096 and response.json()["total_steps"] == 16


def test_create_from_a_candidate_of_the_team(api_client, actors, dataset, sent):
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(objectives=["proxy"], device=None))
    search_services.do_advance_search(job.pk)
    candidate = Candidate.objects.filter(job=job).first()
    body = _body(dataset, candidate=candidate.pk)
    body.pop("architecture")
    response = _client(api_client, actors.bob).post("/api/v1/training-runs/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["candidate"] == candidate.pk and response.json()["archid"] == candidate.archid

    response = _client(api_client, actors.charlie).post("/api/v1/training-runs/", body, format="json")
    assert response.status_code == 400  # neither the dataset nor the candidate is charlie's


@pytest.mark.parametrize("change, field, text", [
    ({"architecture": {**TINY_ARCH, "n_head": 3}}, "architecture.n_head", "divisible"),
    ({"architecture": {"n_layer": 2}}, "architecture.d_model", "required"),
    ({"architecture": None}, "architecture", "either an architecture config or a candidate"),
    ({"config": {**FAST_CONFIG, "seq_len": 128}}, "config.seq_len", "exceeds the architecture's max_sequence_length 64"),
    ({"config": {"seq_len": 32}}, "config.max_steps", "set a budget"),
    ({"config": {**FAST_CONFIG, "learning_rate": 1}}, "config.learning_rate", "unknown training setting"),
    ({"config": {**FAST_CONFIG, "lr": -1}}, "config.lr", "must be in"),
    ({"config": [1, 2]}, "config", "JSON object"),
    ({"tokenizer": "bpe:100"}, "tokenizer", "vocabulary size must be in [257"),
    ({"tokenizer": "bpe:lots"}, "tokenizer", "integer vocabulary size"),
    ({"tokenizer": "sentencepiece:x"}, "tokenizer", "unknown tokenizer"),
    ({"tokenizer": "gpt2-files:nowhere"}, "tokenizer", "does not exist"),
    ({"tokenizer": "gpt2-files:../gpt2"}, "tokenizer", "'..' is not allowed"),
    ({"tokenizer": "gpt2-files:/work/shared/data/gpt2-bpe"}, "tokenizer", "outside the data root"),
    ({"tokenizer": "gpt2-files:broken"}, "tokenizer", "empty or truncated"),
    ({"dataset": 999999}, "dataset", "no such dataset"),
    ({"team": 999999}, "team", "not a member"),
])
def test_invalid_runs_get_400_with_field_messages(api_client, actors, dataset, roots, sent, change, field, text):
    broken = roots[0] / "broken"  # the transformers-5 mistake: a tokenizer with no vocabulary
    broken.mkdir()
    (broken / "vocab.json").write_text("{}")
    (broken / "merges.txt").write_text("#version: 0.2\n")
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(dataset, **change),
                                                      format="json")
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert text in " ".join(errors[field]), errors
    assert not TrainingRun.objects.exists() and not sent


def test_numbers_beyond_the_limits_get_400_not_500(api_client, actors, dataset, sent):
    """The issue: max_steps 1e20 was a 500 (integer out of range in the total_steps column)."""
    client = _client(api_client, actors.alice)
    config = {**FAST_CONFIG, "batch_size": 10**12, "seed": 2**64, "eval_batches": 10**9, "max_minutes": 1e300}
    response = client.post("/api/v1/training-runs/", _body(dataset, config=config, max_steps=10**20), format="json")
    assert response.status_code == 400
    errors = {k: " ".join(v) for k, v in response.json().items()}
    assert errors["config.max_steps"] == "must be at most 2,147,483,647, got 100,000,000,000,000,000,000"
    assert {"config.batch_size", "config.seed", "config.eval_batches", "config.max_minutes"} <= set(errors)
    for body in (_body(dataset, max_steps=1e20), _body(dataset, max_tokens=10**30),
                 _body(dataset, config={**FAST_CONFIG, "max_steps": None}, max_tokens=10**14)):
        response = client.post("/api/v1/training-runs/", body, format="json")
        assert response.status_code == 400, response.json()
    assert "more than 2,147,483,647" in response.json()["config.max_tokens"][0]  # 10**14 tokens at 256 a step
    for ids in ({"dataset": 10**30}, {"team": 2**63}, {"candidate": 10**30, "architecture": None}):
        response = client.post("/api/v1/training-runs/", {**_body(dataset), **ids}, format="json")  # was a 500
        assert response.status_code == 400 and "less than or equal to 9223372036854775807" in str(response.json())
    assert not TrainingRun.objects.exists() and not sent


def test_several_problems_are_reported_together(api_client, actors, dataset, sent):
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(
        dataset, architecture={**TINY_ARCH, "n_layer": 0}, tokenizer="bpe:1"), format="json")
    assert response.status_code == 400 and {"architecture.n_layer", "tokenizer"} <= set(response.json())


def test_a_field_error_does_not_hide_the_checks_after_it(api_client, actors, dataset, sent):
    """A bad budget field (checked by its field) and an unknown dataset (checked in validate()) in one answer."""
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(
        dataset, max_steps=0, dataset=999999, name="x" * 201), format="json")
    assert response.status_code == 400 and {"max_steps", "dataset", "name"} <= set(response.json()), response.json()


def test_a_dataset_gone_since_registration_is_a_400_at_submit(api_client, actors, dataset, roots, sent):
    (roots[0] / dataset.path).unlink()
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(dataset), format="json")
    assert response.status_code == 400 and "does not exist" in response.json()["dataset"][0]


def test_the_gpt2_bpe_from_files_under_the_data_root_is_accepted(api_client, actors, dataset, roots, sent):
    shutil.copytree(GPT2_BPE, roots[0] / "gpt2-bpe")
    arch = {**TINY_ARCH, "max_sequence_length": 64}
    response = _client(api_client, actors.alice).post("/api/v1/training-runs/", _body(
        dataset, architecture=arch, tokenizer="gpt2-files:gpt2-bpe"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tokenizer"] == "gpt2-files:gpt2-bpe"


def test_run_permissions_with_three_users_and_cancel(api_client, actors, dataset, sent):
    run = services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                     config=FAST_CONFIG, architecture=TINY_ARCH)
    charlie = _client(api_client, actors.charlie)
    assert charlie.get("/api/v1/training-runs/").json()["results"] == []
    assert charlie.get(f"/api/v1/training-runs/{run.pk}/").status_code == 404
    assert charlie.post(f"/api/v1/training-runs/{run.pk}/cancel/").status_code == 404

    bob = _client(api_client, actors.bob)
    assert bob.get(f"/api/v1/training-runs/{run.pk}/").status_code == 200
    response = bob.post(f"/api/v1/training-runs/{run.pk}/cancel/")
    assert response.status_code == 403 and "owner" in response.json()["detail"]

    alice = _client(api_client, actors.alice)
    response = alice.post(f"/api/v1/training-runs/{run.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert alice.post(f"/api/v1/training-runs/{run.pk}/cancel/").status_code == 409


def test_a_team_admin_may_cancel_a_members_run(api_client, actors, dataset, sent):
    run = services.do_start_training(owner=actors.bob, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                     config=FAST_CONFIG, architecture=TINY_ARCH)
    assert services.try_claim_training(run.pk, "w1")
    response = _client(api_client, actors.alice).post(f"/api/v1/training-runs/{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True


def test_list_query_count_does_not_grow_with_runs(api_client, actors, dataset, sent, django_assert_num_queries):
    for i in range(3):
        services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                   config=FAST_CONFIG, architecture=TINY_ARCH, name=f"r{i}")
    client = _client(api_client, actors.bob)
    with django_assert_num_queries(2):  # count, page (owner, team, dataset, zoo model joined)
        body = client.get("/api/v1/training-runs/").json()
    assert body["count"] == 3 and "history" not in body["results"][0]
    with django_assert_num_queries(2):
        assert client.get("/api/v1/training-runs/?status=queued").json()["count"] == 3
    detail = client.get(f"/api/v1/training-runs/{body['results'][0]['id']}/").json()
    assert detail["history"] == [] and json.dumps(detail)
