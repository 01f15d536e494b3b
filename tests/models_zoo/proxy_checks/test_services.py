"""The proxy-check services: everything checked before anything is created, runs through the normal training path,
status and result derived from the runs (partial results, failures excluded and counted), cancel, delete."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from models_zoo import services as zoo_services
from models_zoo.models import TrainingRun
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.models import ProxyCheck
from searches import services as search_services
from searches.core.arch import Architecture, ConfigError
from searches.core.space import PRESETS
from tests.models_zoo.proxy_checks.conftest import TINY_CONFIG, TINY_SPACE, TOKENS
from tests.searches.factories import spec

pytestmark = pytest.mark.django_db


def _finish(check: ProxyCheck, ppl_of=lambda proxy: 1e4 / proxy, *, only=None) -> None:
    """Play the training worker: complete the runs (perplexity falling with the proxy unless told otherwise), then
    update the check as the task that finishing them sends does."""
    for member in check.members.select_related("run"):
        if only is not None and member.run_id not in only:
            continue
        proxy = Architecture.from_dict(member.run.architecture).non_embedding_params
        TrainingRun.objects.filter(pk=member.run_id).update(status="completed", val_ppl=ppl_of(proxy), val_loss=1.0)
    services.do_update_proxy_check(check.pk)


def test_a_check_queues_one_training_run_per_architecture_across_the_proxy_range(create, sent, actors):
    check = create()
    assert check.status == "running" and check.sample_size == 4 and check.budgets == [TOKENS]
    proxies = [row["proxy"] for row in check.sample]
    assert proxies == sorted(proxies) and len({row["archid"] for row in check.sample}) == 4
    runs = TrainingRun.objects.filter(proxy_check_member__proxy_check=check)
    assert runs.count() == 4 and {r.status for r in runs} == {"queued"}
    assert sorted(call["args"][0] for call in sent) == sorted(r.pk for r in runs)  # on the "train" queue
    assert {r.config["max_tokens"] for r in runs} == {TOKENS} and all(r.config["seq_len"] == 32 for r in runs)
    assert all(r.owner == actors.alice and r.team == actors.acme for r in runs)
    assert check.result["sentence"].startswith("Not enough trained models yet: 0 of 4 finished.")
    assert check.space_key == services.space_key(check.space)


def test_compare_budget_trains_every_model_at_n_and_2n(create):
    check = create(compare_budget=True, sample_size=3)
    assert check.budgets == [TOKENS, 2 * TOKENS]
    budgets = sorted(m.run.config["max_tokens"] for m in check.members.select_related("run"))
    assert budgets == [TOKENS] * 3 + [2 * TOKENS] * 3


def test_the_default_training_settings_are_the_findings(create):
    check = create(preset="tiny", space=None, config={})
    assert check.config == {"seq_len": 128, "batch_size": 16} and check.preset == "tiny"
    assert check.space == PRESETS["tiny"].to_dict()


@pytest.mark.parametrize("change, field, text", [
    ({"preset": "tiny"}, "space", "give only one of preset, space"),
    ({"space": None}, "preset", "choose one source"),
    ({"space": None, "preset": "huge"}, "preset", "unknown preset 'huge'"),
    ({"space": {**TINY_SPACE, "d_model": [15]}}, "space.n_head", "divisible"),
    ({"sample_size": 2}, "sample_size", "must be in [3, 64]"),
    ({"sample_size": 13}, "sample_size", "only 12 distinct"),
    ({"max_tokens": 0}, "max_tokens", "must be in [1, "),
    ({"max_tokens": 10**15 + 1}, "max_tokens", "must be in [1, 1000000000000000]"),
    ({"max_tokens": 10**14}, "max_tokens", "steps, more than 2,147,483,647"),
    ({"seed": 2**31}, "seed", "must be in [0, 2147483647]"),
    ({"config": {**TINY_CONFIG, "max_steps": 10}}, "config.max_steps", "budget is max_tokens"),
    ({"config": {**TINY_CONFIG, "seq_len": 128}}, "config.seq_len", "exceeds the architecture's max_sequence_length"),
    ({"config": {**TINY_CONFIG, "lr": -1}}, "config.lr", "must be in"),
    ({"tokenizer": "bpe:12"}, "tokenizer", "vocabulary size"),
])
def test_every_mistake_is_a_field_error_and_nothing_is_created(create, sent, change, field, text):
    with pytest.raises(ConfigError) as err:
        create(**change)
    assert text in err.value.errors.get(field, ""), err.value.errors
    assert not ProxyCheck.objects.exists() and not TrainingRun.objects.exists() and not sent


def test_a_dataset_of_another_team_is_refused(create, actors):
    with pytest.raises(ConfigError) as err:
        create(owner=actors.charlie, team=actors.other)
    assert "belongs to another team" in err.value.errors["dataset"]


def test_partial_results_as_models_finish_and_failures_are_excluded_not_dropped(create):
    check = create(sample_size=5)
    runs = sorted(m.run_id for m in check.members.all())
    _finish(check, only=runs[:3])
    check = ProxyCheck.objects.get(pk=check.pk)
    budget = check.result["budgets"][0]
    assert check.status == "running" and budget["n"] == 3
    assert budget["predictors"]["proxy"]["spearman"]["estimate"] == -1.0
    assert "partial: 3 of 5 models so far" in check.result["sentence"]

    zoo_services.do_fail_training(runs[3], None, "DataError: the validation part is too short")
    zoo_services.do_cancel_training(TrainingRun.objects.get(pk=runs[4]))
    check = ProxyCheck.objects.get(pk=check.pk)  # the failed and the cancelled run updated it
    assert check.status == "completed" and check.finished_at is not None
    assert check.result["budgets"][0]["failed"] == 2 and "2 failed or cancelled and excluded" in check.result["sentence"]
    rows = services.model_rows(check)
    errors = [r["runs"][0]["error"] for r in rows if r["runs"][0]["status"] == "failed"]
    assert errors == ["DataError: the validation part is too short"]


def test_a_check_whose_runs_finish_with_no_request_in_between_is_completed(create, sent, one_thread):
    """The training worker's path (the task's body, in-process) and nothing else: each finished run sends its check's
    update, which runs (eagerly here) and stores the status and the result."""
    from lts_web import queueing
    from workers.training import execute_training

    check = create(sample_size=3)
    for member in check.members.all():
        assert execute_training(member.run_id, "w1") == "completed"
    assert [m["args"] for m in sent.named(queueing.UPDATE_PROXY_CHECK)] == [[check.pk]] * 3
    check = ProxyCheck.objects.get(pk=check.pk)
    assert check.status == "completed" and check.finished_at is not None
    budget = check.result["budgets"][0]
    assert budget["n"] == 3 and budget["failed"] == 0
    assert budget["predictors"]["proxy"]["spearman"]["estimate"] is not None
    assert check.result["sentence"].startswith("Short-run ranking after 512 tokens per model, 3 models")


def test_a_run_outside_a_check_sends_no_update(actors, dataset, sent):
    from lts_web import queueing
    from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH

    run = zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:300",
                                         config=FAST_CONFIG, architecture=TINY_ARCH)
    assert zoo_services.do_cancel_training(run)
    assert sent.named(queueing.UPDATE_PROXY_CHECK) == [] and len(sent.named(queueing.TRAIN_MODEL)) == 1


def test_the_reaper_updates_a_check_whose_last_message_was_lost(create):
    stuck, busy = create(sample_size=3), create(sample_size=3, name="busy")
    _finish(busy, only=[busy.members.first().run_id])
    TrainingRun.objects.filter(proxy_check_member__proxy_check=stuck).update(status="completed", val_ppl=5.0)
    assert services.do_reap_proxy_checks() == 1  # the other still trains: left to its runs' messages
    assert ProxyCheck.objects.get(pk=stuck.pk).status == "completed"
    assert ProxyCheck.objects.get(pk=busy.pk).status == "running"
    assert services.do_reap_proxy_checks() == 0


def test_too_few_trained_models_fail_the_check(create):
    check = create(sample_size=3)
    for member in check.members.all():
        zoo_services.do_fail_training(member.run_id, None, "boom")
    check = ProxyCheck.objects.get(pk=check.pk)
    assert check.status == "failed" and "Not enough trained models yet: 0 of 3 finished. 3 failed" in check.result["sentence"]


def test_an_update_is_a_no_op_until_a_run_changes(create):
    check = create(sample_size=3)
    _finish(check)
    assert ProxyCheck.objects.get(pk=check.pk).status == "completed"
    with CaptureQueriesContext(connection) as queries:
        services.do_update_proxy_check(check.pk)
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 2, selects  # the locked check and the runs' state only: no bootstrap
    assert [q["sql"] for q in queries if q["sql"].startswith(("UPDATE", "INSERT", "DELETE"))] == []


def test_cancel_cancels_the_queued_runs_and_the_check(create):
    check = create(sample_size=3)
    assert services.do_cancel_proxy_check(check).status == "cancelled"
    check.refresh_from_db()
    assert check.status == "cancelled" and check.cancel_requested
    assert set(TrainingRun.objects.values_list("status", flat=True)) == {"cancelled"}
    with pytest.raises(services.Conflict, match="cannot cancel a check that is cancelled"):
        services.do_cancel_proxy_check(check)  # already finished


def test_cancel_refuses_a_completed_check_and_leaves_it_as_it_was(create):
    check = create(sample_size=3)
    _finish(check)
    with pytest.raises(services.Conflict, match="cannot cancel a check that is completed"):
        services.do_cancel_proxy_check(check)
    check = ProxyCheck.objects.get(pk=check.pk)
    assert check.status == "completed" and not check.cancel_requested


def test_delete_keeps_the_runs_and_refuses_a_running_check(create):
    check = create(sample_size=3)
    with pytest.raises(services.Conflict):
        services.do_delete_proxy_check(check)
    _finish(check)
    services.do_delete_proxy_check(check)
    assert not ProxyCheck.objects.exists() and TrainingRun.objects.count() == 3


def test_a_finished_search_gives_its_candidates(create, actors):
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(objectives=["proxy"], device=None))
    with pytest.raises(ConfigError) as err:
        create(space=None, search=job)
    assert "a check draws from a finished search" in err.value.errors["search"]
    search_services.do_cancel_search(job)  # finished before its first generation: no candidates to draw from
    job.refresh_from_db()
    with pytest.raises(ConfigError) as err:
        create(space=None, search=job)
    assert "the pool has only 0 distinct ones" in err.value.errors["sample_size"]

    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="t",
                                           spec=spec(objectives=["proxy"], device=None))
    while search_services.do_advance_search(job.pk) not in ("completed", "failed"):
        pass
    job.refresh_from_db()
    check = create(space=None, search=job, sample_size=3, config={**TINY_CONFIG, "seq_len": 32})
    assert check.search == job and check.space == job.spec["space"]
    runs = TrainingRun.objects.filter(proxy_check_member__proxy_check=check)
    assert all(r.candidate is not None and r.candidate.job_id == job.pk for r in runs)
