"""Celery tasks of the model zoo: train_model (queue "train") and reap_training (beat, queue "control").

Thin (STYLE.md): take a run's primary key, claim it with a conditional UPDATE, hand the core its data, tokenizer,
config and run folder, and save what comes back through models_zoo.services. A missing row is logged, not raised.
A worker that dies mid-run leaves its last checkpoint in runs/<id>/; the reaper re-queues the run and the next
worker's ``train()`` resumes from it (model, optimizer, schedule, data position, RNG).
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from models_zoo import services
from models_zoo.core import Progress, prepare_data, saved_tokenizer, thin_history, train
from models_zoo.models import TrainingRun, ZooImport
from searches.core.arch import ConfigError
from searches.queues import broker_lost_data
from workers.heartbeat import Heartbeat

__all__ = ["execute_import", "execute_training", "import_hub_model", "reap_training", "train_model"]

logger = logging.getLogger(__name__)
# Transient database trouble (a restarted server, a locked SQLite file) is retried: the retry holds the same claim
# and resumes from the checkpoint. Anything else fails the run with its reason (user error or bug: no retry loop).
_TRANSIENT = (OperationalError, InterfaceError)


def _heartbeat(run_id: int, worker: str, stop: threading.Event) -> Heartbeat:
    """Refresh the run's heartbeat every LTS_HEARTBEAT_S and read its cancel flag at the same time, so that the
    training loop's should_stop() is a flag test, never a query. ``stop`` is set on a cancel or a lost claim."""

    def beat() -> None:
        state = services.do_training_heartbeat(run_id, worker)
        if state != "ok":
            logger.info("training run %s: %s, stopping", run_id, "cancel requested" if state == "cancel" else
                        "claim lost")
            stop.set()

    return Heartbeat(beat, settings.LTS_HEARTBEAT_S, name=f"heartbeat of training run {run_id}")


class _ProgressWriter:
    """on_progress of the core: keeps the run's figures and history, written at most every LTS_TRAIN_PROGRESS_S
    (evaluations, checkpoints and the end at once)."""

    def __init__(self, run: TrainingRun, worker: str, stop: threading.Event,
                 echo: Callable[[Progress], None] | None = None):
        self.run_id, self.worker, self.stop, self.echo = run.pk, worker, stop, echo
        self.history: list[dict[str, Any]] = list(run.history or [])
        self.values: dict[str, Any] | None = None
        self.last_write = 0.0
        self.started = False

    def __call__(self, p: Progress) -> None:
        if not self.started:
            # A resumed run repeats the steps after its checkpoint: their old points give way to the new ones.
            self.history = [h for h in self.history if h["step"] < p.step]
            self.started = True
        point = {"step": p.step, "tokens": p.tokens_seen, "train_loss": p.train_loss, "val_loss": p.val_loss,
                 "val_ppl": p.val_perplexity, "lr": p.lr, "tokens_per_s": round(p.tokens_per_s, 1),
                 "elapsed_s": round(p.elapsed_s, 2), "event": p.event}
        if self.history and self.history[-1]["step"] == p.step:  # e.g. the final evaluation after the last step
            point = {**self.history.pop(), **{k: v for k, v in point.items() if v is not None}}
        self.history.append(point)
        self.history = thin_history(self.history)
        values = self.values or {}
        values.update(step=p.step, total_steps=p.total_steps, tokens_seen=p.tokens_seen, lr=p.lr,
                      tokens_per_s=p.tokens_per_s, eta_s=p.eta_s, elapsed_s=p.elapsed_s)
        if p.train_loss is not None:
            values["train_loss"] = p.train_loss
        if p.val_loss is not None:
            values.update(val_loss=p.val_loss, val_ppl=p.val_perplexity)
        self.values = values
        if self.echo is not None:
            self.echo(p)
        if p.event != "train" or p.checkpoint or time.monotonic() - self.last_write >= settings.LTS_TRAIN_PROGRESS_S:
            self.flush()

    def flush(self) -> None:
        if self.values is None:
            return
        if not services.do_save_progress(self.run_id, self.worker, self.values, self.history):
            self.stop.set()  # reaped and given to another worker, or finished elsewhere: stop at the next step
        self.values, self.last_write = None, time.monotonic()


def execute_training(run_id: int, worker: str, *, echo: Callable[[Progress], None] | None = None) -> str:
    """Claim, train (or resume), export to the zoo. The task's body; ``lts_train --local`` calls it in-process.

    Returns "completed", "cancelled", "failed", "already-claimed", "lost-claim" or "missing".
    """
    run = TrainingRun.objects.filter(pk=run_id).select_related("dataset").first()
    if run is None:
        logger.warning("training run %s no longer exists", run_id)
        return "missing"
    if not services.try_claim_training(run_id, worker):
        return "already-claimed"  # finished, cancelled, or running on a live worker: re-delivery is a no-op
    stop = threading.Event()
    try:
        with _heartbeat(run_id, worker, stop):
            plan = services.training_plan(run)
            services.do_set_training_phase(run_id, worker, "loading and tokenizing the data")
            # A resumed run reuses the tokenizer saved at its start: a BPE is not retrained, the data fingerprint holds.
            tokenizer, data = prepare_data(plan.source, saved_tokenizer(plan.run_dir) or plan.tokenizer,
                                           val_fraction=plan.val_fraction, cache_dir=plan.token_cache,
                                           root=plan.data_root)
            writer = _ProgressWriter(run, worker, stop, echo)
            services.do_set_training_phase(run_id, worker, "building the model" + (
                " and loading its checkpoint" if run.step else "") + ", then the first steps")
            result = train(plan.arch, tokenizer, data, plan.config, plan.run_dir, on_progress=writer,
                           should_stop=stop.is_set, source_arch=plan.arch)
            writer.flush()
            if result.status == "stopped":
                return services.do_stop_training(run_id, worker, result)
            description = f"{run.tokenizer} ({type(tokenizer).__name__}, {len(tokenizer):,} tokens)"
            model = services.do_finish_training(run_id, worker, result, tokenizer_description=description)
            return "completed" if model is not None else "lost-claim"
    except _TRANSIENT:
        raise
    except ConfigError as exc:  # bad data, tokenizer, settings or checkpoint: permanent, reported, not retried
        logger.warning("training run %s failed: %s", run_id, exc)
        services.do_fail_training(run_id, worker, f"{type(exc).__name__}: {exc}")
        return "failed"
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        services.do_fail_training(run_id, worker, f"{type(exc).__name__}: {exc}")
        return "failed"


@shared_task(name="workers.training.train_model", bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=_TRANSIENT, retry_backoff=5, retry_backoff_max=120, retry_jitter=True, max_retries=5)
def train_model(self, run_id: int) -> str:
    """Train one run (queue "train"); a re-delivered or duplicate message finds the claim taken and does nothing."""
    close_old_connections()
    worker = f"{self.request.hostname or socket.gethostname()}:{self.request.id}"
    return execute_training(run_id, worker)


def execute_import(import_id: int, worker: str) -> str:
    """Claim a hub import and run it with a heartbeat (the task's body): "completed", "failed", "already-claimed",
    "lost-claim" or "missing"."""
    if not ZooImport.objects.filter(pk=import_id).exists():
        logger.warning("zoo import %s no longer exists", import_id)
        return "missing"
    if not services.try_claim_import(import_id, worker):
        return "already-claimed"
    beat = Heartbeat(lambda: ZooImport.objects.heartbeat(import_id, worker), settings.LTS_HEARTBEAT_S,
                     name=f"heartbeat of zoo import {import_id}")
    try:
        with beat:
            return services.do_run_import(import_id, worker)
    except _TRANSIENT:
        raise
    except Exception as exc:
        logger.exception("zoo import %s failed", import_id)
        ZooImport.objects.fail(import_id, worker, f"{type(exc).__name__}: {exc}", unless=ZooImport.FINISHED)
        return "failed"


@shared_task(name="workers.training.import_hub_model", bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=_TRANSIENT, retry_backoff=5, retry_backoff_max=120, retry_jitter=True, max_retries=5)
def import_hub_model(self, import_id: int) -> str:
    """Download a hub checkpoint into the zoo (queue "train"); a duplicate message finds the claim taken."""
    close_old_connections()
    worker = f"{self.request.hostname or socket.gethostname()}:{self.request.id}"
    return execute_import(import_id, worker)


@shared_task(name="workers.training.reap_training")
def reap_training() -> dict:
    """Periodic (beat, LTS_REAPER_INTERVAL_S): re-queue runs and hub imports whose worker died, or fail them after
    LTS_TRAIN_MAX_ATTEMPTS; re-send queued ones whose message the broker lost (as reap_stale_work)."""
    close_old_connections()
    broker_lost = broker_lost_data("reap_training")
    result = services.do_reap_training(broker_lost=broker_lost)
    result["imports"] = services.do_reap_imports(broker_lost=broker_lost)
    return result
