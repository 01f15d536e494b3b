"""Training runs in this process (the task's body): claim, progress, export to the zoo, failures, cancel, reaper."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import redis
import torch
from django.db import connection
from django.utils import timezone
from transformers import AutoModelForCausalLM, AutoTokenizer

from lts_web.errors import Conflict
from models_zoo import services
from models_zoo.core import CHECKPOINT_NAME
from models_zoo.models import TrainingRun, ZooModel
from searches.core.arch import Architecture
from searches.models import Device, Measurement
from tests.conftest import wait_for
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH
from workers.training import execute_training

pytestmark = pytest.mark.django_db


def _start(actors, dataset, **overrides) -> TrainingRun:
    kwargs = dict(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400", config=FAST_CONFIG,
                  architecture=TINY_ARCH)
    kwargs.update(overrides)
    return services.do_start_training(**kwargs)


def _page_as(user, path: str) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.get(path).content.decode()


def _measure(arch: Architecture, device: Device, latency: float, memory: float, seq_len: int = 64) -> Measurement:
    return Measurement.objects.create(archid=arch.archid, config=arch.to_dict(), device=device, backend="torch",
                                      batch_size=1, seq_len=seq_len, threads=1, mode="prefill", dtype="float32",
                                      status="done", latency_median_s=latency, latency_p10_s=latency * 0.9,
                                      latency_p90_s=latency * 1.1, peak_memory_mb=memory)


def test_a_run_trains_exports_to_the_zoo_and_the_checkpoint_loads_and_generates(actors, dataset, sent, one_thread):
    run = _start(actors, dataset)
    assert run.status == "queued" and run.total_steps == 30 and run.archid == Architecture.from_dict(TINY_ARCH).archid
    assert len(sent) == 1 and sent[0]["args"] == [run.pk] and sent[0]["queue"] == "train"
    assert sent[0]["task_id"] == run.task_id
    edge = Device.objects.create(name="edge-1")
    source = Architecture.from_dict(TINY_ARCH)
    _measure(source, edge, 0.002, 40.0)  # measured by a search, under the archid as searched

    assert execute_training(run.pk, "w1") == "completed"
    run.refresh_from_db()
    assert run.status == "completed" and run.step == 30 and run.tokens_seen == 30 * 8 * 32 and run.attempts == 1
    assert run.error == "" and run.val_ppl is not None and run.val_loss is not None and run.eta_s == 0
    losses = [p["train_loss"] for p in run.history if p["train_loss"] is not None]
    assert len(losses) == 30 and losses[-1] < losses[0] - 0.5, losses  # the loss falls
    assert [p["step"] for p in run.history] == list(range(1, 31))
    assert sum(p["val_loss"] is not None for p in run.history) == 3  # steps 10, 20 and the final evaluation
    trained = Architecture.from_dict({**TINY_ARCH, "vocab_size": 361})  # the BPE learned 361 tokens from this text
    assert run.trained_archid == trained.archid != run.archid

    model = run.zoo_model
    assert model.source == "trained" and model.archid == trained.archid and model.source_archid == run.archid
    assert model.non_embedding_params == trained.non_embedding_params and model.val_ppl == run.val_ppl
    assert model.path == f"zoo/{model.pk}" and model.folder.is_dir() and model.size_bytes > 0
    assert [p.name for p in model.folder.parent.iterdir()] == [str(model.pk)]  # the staging folder was renamed
    assert model.budget_description == "30 steps" and model.data_description == "folder:corpora/kings.txt"

    hf = AutoModelForCausalLM.from_pretrained(model.folder)
    tokenizer = AutoTokenizer.from_pretrained(model.folder)
    assert hf.config.n_embd == 32 and hf.config.n_inner == 64 and hf.config.vocab_size == len(tokenizer) == 361
    ids = tokenizer("The old king", return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 8
    card = (model.folder / "README.md").read_text()
    assert f"`{trained.archid}`" in card and f"`{run.archid}`" in card and "edge-1" in card and "2" in card
    assert "| device |" in card and "latency_ms" in card

    # Its own architecture (vocabulary 361, not 256) is queued on the device and settings its searched one was
    # measured with; the zoo shows the searched one's figures, labelled, until then.
    own = Measurement.objects.get(archid=trained.archid)
    assert (own.device, own.seq_len, own.mode, own.batch_size, own.status) == (edge, 64, "prefill", 1, "pending")
    profiled = [m for m in sent if m["name"] == "workers.tasks.profile_measurement"]
    assert profiled == [{"name": "workers.tasks.profile_measurement", "args": [own.pk], "queue": edge.queue,
                         "task_id": own.task_id}]
    page = _page_as(actors.alice, f"/zoo/models/{model.pk}/")
    assert "the architecture as searched, not this model&#x27;s, whose vocabulary is 361" in page
    Measurement.objects.filter(pk=own.pk).update(status="done", latency_median_s=0.0031, latency_p10_s=0.003,
                                                 latency_p90_s=0.0032, peak_memory_mb=41.5)
    listing = _page_as(actors.alice, "/zoo/")
    assert "3.1 ms" in listing and "41.5 MB" in listing and "as-searched" not in listing  # its own, preferred
    assert "this model&#x27;s architecture" in _page_as(actors.alice, f"/zoo/models/{model.pk}/")

    # A duplicate delivery of the message is a no-op: the claim is gone, the zoo keeps one model.
    assert execute_training(run.pk, "w2") == "already-claimed"
    assert ZooModel.objects.filter(training_run=run).count() == 1


def test_a_dataset_that_vanished_fails_the_run_with_the_reason_once(actors, dataset, roots, sent):
    run = _start(actors, dataset)
    (roots[0] / dataset.path).unlink()  # registered fine, gone by the time a worker starts
    assert execute_training(run.pk, "w1") == "failed"
    run.refresh_from_db()
    assert run.status == "failed" and "DataError" in run.error and "does not exist" in run.error
    assert execute_training(run.pk, "w1") == "already-claimed"  # a redelivery does not loop
    assert run.attempts == 1


def test_text_too_short_for_the_sequence_length_fails_clearly(actors, roots, sent):
    (roots[0] / "short.txt").write_text("The king sees the queen.\n" * 30)
    dataset = services.do_register_dataset(owner=actors.alice, team=actors.acme, name="short", kind="folder",
                                           path="short.txt")
    run = _start(actors, dataset, config={**FAST_CONFIG, "seq_len": 64})
    assert execute_training(run.pk, "w1") == "failed"
    run.refresh_from_db()
    assert "fewer than" in run.error and run.step == 0


@pytest.mark.django_db(transaction=True)  # the run trains in a second thread, on its own connection
def test_cancel_stops_a_running_run_at_the_next_heartbeat_and_keeps_its_checkpoint(actors, dataset, sent, settings,
                                                                                  one_thread):
    settings.LTS_HEARTBEAT_S = 1
    run = _start(actors, dataset, config={**FAST_CONFIG, "max_steps": 100_000, "checkpoint_interval": 5})
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(execute_training(run.pk, "w1"))
        finally:
            connection.close()  # this thread's own connection: PostgreSQL cannot drop a test database in use

    thread = threading.Thread(target=work)
    thread.start()
    try:
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 6, 60, message="a few steps")
        run.refresh_from_db()
        assert services.do_cancel_training(run)
    finally:
        thread.join(60)
    assert outcome == ["cancelled"]
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None and 6 <= run.step < 100_000
    assert (run.run_dir / CHECKPOINT_NAME).is_file() and not ZooModel.objects.filter(training_run=run).exists()
    with pytest.raises(Conflict, match="cannot cancel a run that is cancelled"):  # already finished
        services.do_cancel_training(run)


def test_cancel_of_a_queued_run_is_immediate_and_the_message_then_does_nothing(actors, dataset, sent):
    run = _start(actors, dataset)
    assert services.do_cancel_training(run)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert execute_training(run.pk, "w1") == "already-claimed"


def test_the_reaper_requeues_a_silent_run_then_fails_it_after_max_attempts(actors, dataset, sent, settings):
    settings.LTS_TRAIN_MAX_ATTEMPTS = 2
    run = _start(actors, dataset)
    old = timezone.now() - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S + 1)
    assert services.try_claim_training(run.pk, "w1")
    assert not services.try_claim_training(run.pk, "w2")  # alive: nobody else takes it
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=old)  # the worker died
    assert services.do_reap_training() == {"requeued": 1, "failed": 0, "cancelled": 0, "redispatched": 0}
    run.refresh_from_db()
    assert run.status == "queued" and len(sent) == 2 and sent[1]["task_id"] == run.task_id

    assert services.try_claim_training(run.pk, "w2")
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=old)
    assert not services.try_claim_training(run.pk, "w3")  # stale, but no attempts left: the reaper decides
    assert services.do_reap_training() == {"requeued": 0, "failed": 1, "cancelled": 0, "redispatched": 0}
    run.refresh_from_db()
    assert run.status == "failed" and "2 times" in run.error and "w2" in run.error and "checkpoint" in run.error
    assert services.do_reap_training() == {"requeued": 0, "failed": 0, "cancelled": 0, "redispatched": 0}


def test_the_reaper_resends_a_queued_run_whose_message_is_gone(actors, dataset, sent, settings):
    run = _start(actors, dataset)  # recorded, never sent: the train queue is empty, as after a broker restart
    first_task = TrainingRun.objects.get(pk=run.pk).task_id
    assert services.do_reap_training()["redispatched"] == 0  # dispatched just now: not yet suspicious
    TrainingRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.LTS_PENDING_REDISPATCH_S + 1))
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.rpush("train", b"another run's message", json.dumps({"headers": {"id": first_task}}))  # still waits
    try:
        assert services.do_reap_training()["redispatched"] == 0
    finally:
        broker.delete("train")
    assert services.do_reap_training()["redispatched"] == 1
    run.refresh_from_db()
    assert run.status == "queued" and run.task_id != first_task and sent[-1]["task_id"] == run.task_id
    assert services.do_reap_training()["redispatched"] == 0  # just re-sent


def test_the_reaper_cancels_a_silent_run_whose_cancel_was_pending(actors, dataset, sent, settings):
    run = _start(actors, dataset)
    assert services.try_claim_training(run.pk, "w1")
    run.refresh_from_db()
    assert services.do_cancel_training(run)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.do_reap_training()["cancelled"] == 1
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"


def test_history_is_thinned_but_keeps_evaluations_and_the_last_point():
    history = [{"step": s, "val_loss": 1.0 if s % 100 == 0 else None} for s in range(1, 2001)]
    thinned = services.thin_history(history, limit=100)
    assert len(thinned) <= 100 and thinned[-1]["step"] == 2000
    assert [p["step"] for p in thinned] == sorted(p["step"] for p in thinned)
    assert {p["step"] for p in thinned if p["val_loss"]} == set(range(100, 2001, 100))


def test_finish_is_refused_without_the_claim(actors, dataset, sent):
    run = _start(actors, dataset)
    assert services.try_claim_training(run.pk, "w1")
    assert services.do_finish_training(run.pk, "someone-else", result=None) is None
    assert not services.do_save_progress(run.pk, "someone-else", {"step": 5}, [])
    assert services.do_training_heartbeat(run.pk, "someone-else") == "lost"
    assert services.do_training_heartbeat(run.pk, "w1") == "ok"
