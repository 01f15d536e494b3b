"""Training on real Celery workers: lts_train through the "train" queue, and SIGKILL of the worker mid-run followed by
a resume from the last checkpoint on a fresh worker."""
from __future__ import annotations

import io
import json

import pytest
import torch
from django.core.management import call_command
from transformers import AutoModelForCausalLM, AutoTokenizer

from models_zoo import services
from models_zoo.models import TrainingRun
from tests.conftest import wait_finished, wait_for
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# As tests/searches/test_jobs_workers.py: beats every second, silent for 4 s means dead. One torch thread: a
# 32-wide model gains nothing from two, and the test process polls beside it on 2 cores.
FAST_RECOVERY = {"LTS_HEARTBEAT_S": "1", "LTS_DEVICE_OFFLINE_AFTER_S": "4", "LTS_TRAIN_PROGRESS_S": "0",
                 "OMP_NUM_THREADS": "1"}


def _env(roots) -> dict[str, str]:
    data, artifacts = roots
    return {**FAST_RECOVERY, "LTS_DATA_ROOT": str(data), "LTS_ARTIFACT_ROOT": str(artifacts)}




def test_lts_train_runs_on_a_train_worker_and_the_zoo_model_generates(start_worker, actors, corpus, roots):
    worker = start_worker(["train"], env=_env(roots))
    out = io.StringIO()
    call_command("lts_train", "--arch", json.dumps(TINY_ARCH), "--data", corpus, "--tokenizer", "bpe:400",
                 "--max-steps", "30", "--config", json.dumps({k: v for k, v in FAST_CONFIG.items() if k != "max_steps"}),
                 "--user", "alice", "--name", "cli", "--timeout", "120", stdout=out)
    text = out.getvalue()
    run = TrainingRun.objects.get(name="cli")
    assert run.status == "completed" and run.step == 30, (text, worker.output()[-3000:])
    assert "completed step 30/30  [####################]" in text and "perplexity" in text and f"zoo model #{run.zoo_model.pk}" in text
    assert run.claimed_by.startswith("test-")  # trained by the worker, not in this process
    losses = [p["train_loss"] for p in run.history if p["train_loss"] is not None]
    assert losses[-1] < losses[0] - 0.5

    folder = run.zoo_model.folder
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The young queen", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert tokenizer.decode(generated[0]).startswith("The young queen")


def test_sigkill_of_the_training_worker_resumes_from_the_checkpoint_on_a_new_worker(start_worker, actors, corpus,
                                                                                   roots, settings):
    settings.LTS_DEVICE_OFFLINE_AFTER_S = 4  # the reaper of this process, with the workers' fast settings
    dataset = services.do_register_dataset(owner=actors.alice, team=actors.acme, name="kings", kind="folder",
                                           path=corpus)
    first = start_worker(["train"], env=_env(roots))
    config = {**FAST_CONFIG, "max_steps": 300, "checkpoint_interval": 20, "eval_interval": 100}
    run = services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                     config=config, architecture=TINY_ARCH)
    # Kill it mid-run, after its first checkpoint (step 20).
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 25, 120, interval_s=0.05, message="step 25")
    first.kill()
    run.refresh_from_db()
    killed_at, before = run.step, {p["step"]: p["train_loss"] for p in run.history}
    assert run.status == "running" and killed_at < 300

    second = start_worker(["train"], env=_env(roots))
    # The reaper finds the silent run (no beat for 4 s) and re-queues it; the new worker claims it and resumes.
    wait_for(lambda: services.do_reap_training()["requeued"], 30, interval_s=0.5, message="the reaper to re-queue")
    wait_finished(run, 180, second)
    assert run.status == "completed", (run.error, second.output()[-3000:])
    assert run.step == run.total_steps == 300 and run.tokens_seen == 300 * 8 * 32
    assert run.attempts == 2 and run.claimed_by != "" and run.zoo_model is not None
    # Resumed from a checkpoint at or before the kill (every 20 steps), not from scratch.
    assert run.resumed_from is not None and 20 <= run.resumed_from <= killed_at and run.resumed_from % 20 == 0
    steps = [p["step"] for p in run.history]
    assert steps == list(range(1, 301))
    after = {p["step"]: p["train_loss"] for p in run.history}
    # The loss continues where the checkpoint left it: the first step after the resume is as low as the last steps
    # before the kill, far below the loss of a fresh model (step 1).
    first_resumed = after[run.resumed_from + 1]
    assert first_resumed < before[1] - 0.5 and abs(first_resumed - before[run.resumed_from]) < 0.3
    assert after[300] < first_resumed
    # And it is the same training: the steps replayed after the checkpoint reproduce the lost ones (same batches,
    # same RNG, same thread count).
    replayed = [s for s in range(run.resumed_from + 1, killed_at + 1) if before.get(s) is not None]
    assert replayed and [after[s] for s in replayed] == pytest.approx([before[s] for s in replayed], rel=1e-5)
