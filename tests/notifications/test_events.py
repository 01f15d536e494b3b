"""Each kind of long work emits its event once per finish, from the service that finishes it, after the commit:
search.finished / search.failed, training.finished / training.failed, proxy_check.finished; only to the webhooks of
its team that chose the event; a cancel emits nothing; a proxy check's own runs emit no training events."""
from __future__ import annotations

import pytest

from models_zoo import services as zoo_services
from models_zoo.models import TrainingRun
from models_zoo.proxy_checks import services as check_services
from models_zoo.proxy_checks.models import ProxyCheck
from notifications import services
from notifications.models import Delivery
from searches import services as search_services
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH, corpus, dataset, one_thread, roots, sent  # noqa: F401  (fixtures)
from tests.models_zoo.proxy_checks.conftest import create  # noqa: F401  (fixture)
from tests.searches.conftest import device, no_messages  # noqa: F401  (fixtures)
from tests.searches.factories import run_job, spec
from workers.training import execute_training

pytestmark = pytest.mark.django_db


def _events() -> list[tuple[str, int]]:
    return [(d.event, d.webhook_id) for d in Delivery.objects.order_by("pk")]


def test_a_completed_search_emits_search_finished_once(actors, device, no_messages, webhook, receiver, sent_deliveries,
                                                       django_capture_on_commit_callbacks):
    others = services.do_create_webhook(owner=actors.charlie, team_id=actors.other.pk, url=receiver.url)
    picky = services.do_create_webhook(owner=actors.alice, team_id=actors.acme.pk, url=receiver.url,
                                       events=["search.failed"])
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s", spec=spec())
    with django_capture_on_commit_callbacks(execute=True):
        run_job(job)
        assert search_services.do_advance_search(job.pk) == "completed"  # a late step finds it finished
        search_services.do_fail_search(job.pk, "too late")  # and cannot fail it
    assert job.status == "completed"
    assert _events() == [("search.finished", webhook.pk)]  # not to another team's, nor to one that chose others
    assert others.pk and picky.pk and sent_deliveries == [Delivery.objects.get().pk]
    data = Delivery.objects.get().payload["search"]
    assert data["status"] == "completed" and data["generation"] == 3 and data["pareto"] > 0
    assert data["hypervolume"] == job.hypervolumes[-1]["hypervolume"]
    assert Delivery.objects.get().payload["text"].startswith(f'[acme] Search "s" (#{job.pk}) completed: 3 generations')


def test_a_failed_search_emits_search_failed_once_and_a_cancel_nothing(actors, no_messages, webhook, sent_deliveries,
                                                                       django_capture_on_commit_callbacks):
    failing = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="f",
                                               spec=spec(device=None, objectives=["proxy"]))
    cancelled = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="c",
                                                 spec=spec(device=None, objectives=["proxy"]))
    with django_capture_on_commit_callbacks(execute=True):
        search_services.do_fail_search(failing.pk, "boom")
        search_services.do_fail_search(failing.pk, "boom again")
        assert search_services.do_cancel_search(cancelled)
    assert _events() == [("search.failed", webhook.pk)]


def test_nothing_is_emitted_when_the_transaction_rolls_back(actors, no_messages, webhook, sent_deliveries,
                                                            django_capture_on_commit_callbacks):
    from django.db import transaction

    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="f",
                                           spec=spec(device=None, objectives=["proxy"]))
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                search_services.do_fail_search(job.pk, "boom")
                raise RuntimeError("the finishing transaction failed")
    job.refresh_from_db()
    assert job.status == "queued" and not Delivery.objects.exists() and sent_deliveries == []


def test_training_runs_emit_finished_and_failed_once(actors, dataset, sent, webhook, sent_deliveries, one_thread):
    run = zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                         config=FAST_CONFIG, architecture=TINY_ARCH, name="tiny")
    assert execute_training(run.pk, "w1") == "completed"
    assert execute_training(run.pk, "w1") == "already-claimed"
    assert not zoo_services.do_fail_training(run.pk, None, "late")
    run.refresh_from_db()
    assert _events() == [("training.finished", webhook.pk)]
    body = Delivery.objects.get().payload
    assert body["training_run"]["zoo_model"] == run.zoo_model.pk and body["training_run"]["val_ppl"] == run.val_ppl
    assert f'Training run "tiny" (#{run.pk}) completed: validation perplexity {run.val_ppl:.2f}' in body["text"]
    assert body["url"].endswith(f"/zoo/runs/{run.pk}/")

    failing = zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset,
                                             tokenizer="bpe:400", config=FAST_CONFIG, architecture=TINY_ARCH)
    assert zoo_services.do_fail_training(failing.pk, None, "DataError: too short")
    assert not zoo_services.do_fail_training(failing.pk, None, "DataError: too short")
    cancelled = zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset,
                                               tokenizer="bpe:400", config=FAST_CONFIG, architecture=TINY_ARCH)
    assert zoo_services.do_cancel_training(cancelled)
    assert [e for e, _ in _events()] == ["training.finished", "training.failed"]
    assert Delivery.objects.order_by("pk").last().payload["training_run"]["error"] == "DataError: too short"
    assert len(sent_deliveries) == 2


def test_the_reaper_failing_a_run_emits_training_failed(actors, dataset, sent, webhook, sent_deliveries, settings):
    from datetime import timedelta

    from django.utils import timezone

    run = zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                         config=FAST_CONFIG, architecture=TINY_ARCH)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", attempts=settings.LTS_TRAIN_MAX_ATTEMPTS,
                                                 heartbeat_at=timezone.now() - timedelta(hours=1))
    assert zoo_services.do_reap_training()["failed"] == 1
    assert zoo_services.do_reap_training()["failed"] == 0
    assert _events() == [("training.failed", webhook.pk)]


def test_a_proxy_check_emits_proxy_check_finished_once_and_its_runs_nothing(create, webhook, sent_deliveries):
    check = create(sample_size=3)
    runs = [m.run_id for m in check.members.all()]
    zoo_services.do_fail_training(runs[0], None, "boom")  # a run of the check: no training.failed
    for pk in runs[1:]:
        TrainingRun.objects.filter(pk=pk).update(status="completed", val_ppl=10.0 + pk, val_loss=1.0)
    assert not Delivery.objects.exists()
    check = check_services.do_update_proxy_check(check.pk)
    assert check.status == "failed"  # 2 of 3 trained: too few for a correlation
    check_services.do_update_proxy_check(check.pk)  # updates again (a duplicate message, the reaper): no event
    check_services.do_reap_proxy_checks()
    assert _events() == [("proxy_check.finished", webhook.pk)]
    body = Delivery.objects.get().payload
    assert body["proxy_check"]["status"] == "failed" and body["proxy_check"]["sentence"] == check.result["sentence"]
    assert body["url"].endswith(f"/proxy-checks/{check.pk}/")


def test_a_cancelled_proxy_check_emits_nothing(create, webhook, sent_deliveries):
    check = create(sample_size=3)
    check_services.do_cancel_proxy_check(check)
    assert ProxyCheck.objects.get(pk=check.pk).status == "cancelled"
    assert not Delivery.objects.exists()
