"""Training runs: start (validate everything a worker would trip over, then queue on "train"), cancel, and the
worker's side (claim, heartbeat, progress, stop, fail, finish into the zoo) and the reaper.

The worker side changes a run only while it holds the claim: every such write is a conditional UPDATE on
(status running, claimed_by = this worker), through lts_web.work.QueuedWorkQuerySet.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from lts_web import queueing
from lts_web.errors import Conflict
from models_zoo.core import (
    DataError,
    TextSource,
    TrainConfig,
    TrainResult,
    export_model,
)
from models_zoo.core import check_tokenizer_spec as core_check_tokenizer_spec
from models_zoo.models import Dataset, TrainingRun, ZooModel
from models_zoo.services._common import _artifact_root, _data_root, _folder_size, _move_into_place, _prefixed
from models_zoo.services.datasets import _check_hub, _check_local, dataset_source
from models_zoo.services.zoo import measure_own_architecture, measurement_rows
from notifications.services import notify_training
from searches.core.arch import Architecture, ConfigError
from searches.models import Candidate
from searches.queues import resend_lost

__all__ = [
    "TrainingPlan",
    "check_tokenizer_spec",
    "do_cancel_training",
    "do_fail_training",
    "do_finish_training",
    "do_reap_training",
    "do_save_progress",
    "do_set_training_phase",
    "do_start_training",
    "do_stop_training",
    "do_training_heartbeat",
    "training_plan",
    "try_claim_training",
]

R = TrainingRun.Status


def check_tokenizer_spec(spec: str) -> None:
    """Raise TokenizerError({"tokenizer": ...}) unless ``spec`` names a usable tokenizer (DIR confined to
    LTS_DATA_ROOT): models_zoo.core.check_tokenizer_spec."""
    core_check_tokenizer_spec(spec, root=_data_root())


def _architecture(architecture: Mapping[str, Any] | None, candidate: Candidate | None) -> Architecture:
    if candidate is not None:
        return Architecture.from_dict(candidate.config)
    if architecture is None:
        raise ConfigError({"architecture": "give an architecture config or a candidate"})
    try:
        return Architecture.from_dict(architecture)
    except ConfigError as exc:
        raise ConfigError(_prefixed("architecture", exc)) from None


def _train_config(config: Mapping[str, Any], arch: Architecture) -> dict[str, Any]:
    """The validated TrainConfig as stored: without "device" unless the user chose one (the worker picks)."""
    if not isinstance(config, Mapping):
        raise ConfigError({"config": "must be a JSON object of training settings"})
    try:
        parsed = TrainConfig.from_dict({**config, "device": config.get("device") or "auto"})
    except ConfigError as exc:
        raise ConfigError(_prefixed("config", exc)) from None
    if parsed.seq_len > arch.max_sequence_length:
        raise ConfigError({"config.seq_len": f"{parsed.seq_len} exceeds the architecture's max_sequence_length "
                                             f"{arch.max_sequence_length}"})
    stored = parsed.to_dict()
    if not config.get("device"):
        stored.pop("device")
    return stored


def do_start_training(*, owner, team, dataset: Dataset, tokenizer: str, config: Mapping[str, Any],
                      architecture: Mapping[str, Any] | None = None, candidate: Candidate | None = None,
                      name: str = "", dispatch: bool = True) -> TrainingRun:
    """Validate everything a worker would trip over, then create the run and queue it on "train".

    Raises ConfigError with every problem found (architecture.*, config.*, dataset, tokenizer). dispatch=False
    only creates the row (``lts_train --local`` trains it in-process).
    """
    errors: dict[str, str] = {}
    arch = None
    try:
        arch = _architecture(architecture, candidate)
    except ConfigError as exc:
        errors.update(exc.errors)
    stored_config: dict[str, Any] = {}
    if arch is not None:
        try:
            stored_config = _train_config(config, arch)
        except ConfigError as exc:
            errors.update(exc.errors)
    if dataset.team_id != team.pk:
        errors["dataset"] = f"dataset {dataset.name!r} belongs to another team"
    else:
        try:
            if dataset.kind == Dataset.Kind.HUB:
                _check_hub(dataset.hub_name, dataset.hub_split, dataset.hub_text_field)
            else:
                _check_local(dataset.path)
        except ConfigError as exc:
            errors["dataset"] = f"{dataset.name}: " + "; ".join(exc.errors.values())
    try:
        check_tokenizer_spec(tokenizer)
    except ConfigError as exc:
        errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    assert arch is not None
    with transaction.atomic():
        run = TrainingRun.objects.create(
            team=team, owner=owner, name=(name or f"{arch.archid[:13]} on {dataset.name}")[:200],
            architecture=arch.to_dict(), archid=arch.archid, candidate=candidate, dataset=dataset,
            dataset_description=dataset.describe(), tokenizer=tokenizer.strip(), config=stored_config,
            total_steps=TrainConfig.from_dict({**stored_config, "device": "cpu"}).total_steps,
        )
        if dispatch:
            _dispatch_training(run.pk)
    run.refresh_from_db()
    return run


def _dispatch_training(run_id: int) -> None:
    """Send the task only if this caller wins the right to (QueuedWorkQuerySet.dispatch_once)."""
    task_id = TrainingRun.objects.dispatch_once(run_id)
    if task_id:
        queueing.send(queueing.TRAIN_MODEL, [run_id], queue="train", task_id=task_id)


def _run_finished(run_id: int) -> None:
    """A run of a proxy check that finished, failed or was cancelled updates its check on a worker once this commits
    (best effort: the proxy-check reaper catches a lost message)."""
    check_id = (TrainingRun.objects.filter(pk=run_id).values_list("proxy_check_member__proxy_check_id", flat=True)
                .first())
    if check_id is not None:
        queueing.send(queueing.UPDATE_PROXY_CHECK, [check_id], best_effort=True)


def do_cancel_training(run: TrainingRun) -> TrainingRun:
    """A queued run is cancelled now; a running one is asked to stop (its worker checkpoints and stops within a
    heartbeat). The last checkpoint stays. Conflict when the run had already finished."""
    now = timezone.now()
    if TrainingRun.objects.filter(pk=run.pk, status=R.QUEUED).update(
            status=R.CANCELLED, cancel_requested=True, finished_at=now, eta_s=None):
        _run_finished(run.pk)
    elif not TrainingRun.objects.filter(pk=run.pk, status=R.RUNNING).update(cancel_requested=True):
        raise Conflict(f"cannot cancel a run that is {run.status}")
    return run


# ---- the worker's side --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingPlan:
    """What the worker hands to the core for a run."""

    arch: Architecture
    config: TrainConfig
    source: TextSource
    val_fraction: float
    tokenizer: str
    run_dir: Path
    token_cache: Path
    data_root: Path


def _train_device(config: Mapping[str, Any]) -> str:
    device = config.get("device") or settings.LTS_TRAIN_DEVICE
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def training_plan(run: TrainingRun) -> TrainingPlan:
    if run.dataset is None:
        raise DataError({"dataset": f"the dataset of this run ({run.dataset_description}) was deleted"})
    return TrainingPlan(
        arch=Architecture.from_dict(run.architecture),
        config=TrainConfig.from_dict({**run.config, "device": _train_device(run.config)}),
        source=dataset_source(run.dataset), val_fraction=run.dataset.validation_fraction, tokenizer=run.tokenizer,
        run_dir=run.run_dir, token_cache=_artifact_root() / "cache" / "tokens", data_root=_data_root(),
    )


def try_claim_training(run_id: int, worker: str) -> bool:
    """Conditional UPDATE (STYLE habit 2): queued; or running with a heartbeat so old that its worker is gone
    (attempts left); or running under this very worker and task (a retry after a transient error)."""
    now = timezone.now()
    return TrainingRun.objects.claim(
        run_id, worker, max_attempts=settings.LTS_TRAIN_MAX_ATTEMPTS, also=Q(status=R.RUNNING, claimed_by=worker),
        where={"cancel_requested": False}, started_at=Coalesce("started_at", now), finished_at=None)


def do_training_heartbeat(run_id: int, worker: str) -> str:
    """"ok", "cancel" (the user asked to stop) or "lost" (the run is no longer this worker's)."""
    if not TrainingRun.objects.heartbeat(run_id, worker):
        return "lost"
    cancel = TrainingRun.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first()
    return "cancel" if cancel else "ok"


def do_set_training_phase(run_id: int, worker: str, phase: str) -> bool:
    """What the run is doing before its first reported step ("tokenizing the data", ...); False when the claim was
    lost."""
    return bool(TrainingRun.objects.claimed(run_id, worker).update(phase=phase[:60], heartbeat_at=timezone.now()))


def do_save_progress(run_id: int, worker: str, values: Mapping[str, Any], history: list[dict[str, Any]]) -> bool:
    """Store the latest figures and the history (thinned by the caller with models_zoo.core.thin_history, as the
    checkpoint's); False when the claim was lost."""
    return bool(TrainingRun.objects.claimed(run_id, worker).update(**values, history=history,
                                                                    heartbeat_at=timezone.now()))


def do_stop_training(run_id: int, worker: str, result: TrainResult) -> str:
    """A run that stopped on request becomes cancelled, its checkpoint kept for a later look."""
    done = TrainingRun.objects.claimed(run_id, worker).filter(cancel_requested=True).update(
        status=R.CANCELLED, finished_at=timezone.now(), step=result.step, tokens_seen=result.tokens_seen,
        elapsed_s=result.elapsed_s, eta_s=None)
    if done:
        _run_finished(run_id)
    return "cancelled" if done else "lost-claim"


def do_fail_training(run_id: int, worker: str | None, reason: str) -> bool:
    failed = TrainingRun.objects.fail(run_id, worker, reason, unless=TrainingRun.FINISHED, eta_s=None)
    if failed:
        _run_finished(run_id)
        notify_training(run_id, R.FAILED)
    return failed


def do_finish_training(run_id: int, worker: str, result: TrainResult, *, tokenizer_description: str = "") -> ZooModel | None:
    """Export the finished run to the zoo (config, safetensors, tokenizer, a card with every latency/memory
    measurement of its archid per device) and complete it. Idempotent: one zoo model per run (OneToOne), and only
    the worker holding the claim finishes; None when the claim was lost.

    The export (seconds for a large model) is written to a staging folder first, with no lock held; the short
    transaction that locks the run then only creates the row, renames the folder into place and completes the run.
    """
    run = TrainingRun.objects.claimed(run_id, worker).select_related("dataset").first()
    if run is None:
        return None
    zoo = _artifact_root() / "zoo"
    staging = None
    if not ZooModel.objects.filter(training_run=run).exists():
        zoo.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=zoo, prefix=f".run-{run.pk}.", suffix=".tmp"))
        try:
            archids = [result.arch.archid, Architecture.from_dict(run.architecture).archid]  # as trained, as searched
            export_model(run.run_dir, staging, measurements=measurement_rows(archids), title=run.name,
                         data_description=run.dataset_description,
                         tokenizer_description=tokenizer_description or None, overwrite=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    try:
        return _complete_training(run_id, worker, result, staging, tokenizer_description)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # not moved into the zoo: the claim was lost, or a replay


def _complete_training(run_id: int, worker: str, result: TrainResult, staging: Path | None,
                       tokenizer_description: str) -> ZooModel | None:
    target: Path | None = None
    try:
        with transaction.atomic():
            run = (TrainingRun.objects.select_for_update(of=("self",))
                   .filter(pk=run_id, status=R.RUNNING, claimed_by=worker).first())
            if run is None:
                return None
            source = Architecture.from_dict(run.architecture)
            trained = result.arch
            model = ZooModel.objects.filter(training_run=run).first()
            if model is None:
                if staging is None:  # the zoo model of an earlier finish was deleted meanwhile: export again
                    raise RuntimeError(f"training run {run_id}: its zoo model is gone; finish it again")
                model = ZooModel.objects.create(
                    team_id=run.team_id, owner_id=run.owner_id, name=run.name, archid=trained.archid,
                    source_archid=source.archid if source.archid != trained.archid else "", config=trained.to_dict(),
                    non_embedding_params=trained.non_embedding_params, total_params=trained.total_params,
                    source=ZooModel.Source.TRAINED, training_run=run, val_loss=result.val_loss,
                    val_ppl=result.val_perplexity, data_description=run.dataset_description,
                    tokenizer_description=tokenizer_description or run.tokenizer,
                    budget_description=TrainConfig.from_dict({**run.config, "device": "cpu"}).describe_budget(),
                    tokens_seen=result.tokens_seen, path="", size_bytes=_folder_size(staging),
                )
                model.path = f"zoo/{model.pk}"
                target = model.folder
                _move_into_place(staging, target)
                model.save(update_fields=["path"])
                measure_own_architecture(model)
            TrainingRun.objects.filter(pk=run.pk).update(
                status=R.COMPLETED, finished_at=timezone.now(), step=result.step, tokens_seen=result.tokens_seen,
                elapsed_s=result.elapsed_s, val_loss=result.val_loss, val_ppl=result.val_perplexity,
                best_val_loss=result.best_val_loss, trained_archid=trained.archid, resumed_from=result.resumed_from,
                eta_s=0.0, train_loss=result.train_loss if result.train_loss is not None else F("train_loss"))
            _run_finished(run.pk)
            notify_training(run.pk, R.COMPLETED)
    except BaseException:
        if target is not None:  # its row was rolled back
            shutil.rmtree(target, ignore_errors=True)
        raise
    return model


def _reaped(run: TrainingRun) -> None:
    """A run the reaper ended: cancelled (a cancel was pending) or failed after its last attempt."""
    _run_finished(run.pk)
    if not run.cancel_requested:
        notify_training(run.pk, R.FAILED)


def do_reap_training(*, broker_lost: bool = False) -> dict[str, int]:
    """Running runs whose heartbeat stopped: re-queued to resume from their last checkpoint (at most
    LTS_TRAIN_MAX_ATTEMPTS claims in all), then failed with the reason; cancelled if a cancel was pending. Queued runs
    whose message is gone: sent again (searches.queues.resend_lost; ``broker_lost`` comes from
    searches.queues.broker_lost_data).

    Tolerates races: every change is a conditional UPDATE on the stale state it observed; a duplicate message is
    harmless because only one claim can win.
    """
    resent = resend_lost(TrainingRun.objects.filter(status=R.QUEUED).only("pk", "task_id"), lambda run: "train",
                         lambda run: _dispatch_training(run.pk), broker_lost=broker_lost)
    counts = TrainingRun.objects.only("pk", "heartbeat_at", "attempts", "claimed_by", "cancel_requested", "step")\
        .reap_stale(max_attempts=settings.LTS_TRAIN_MAX_ATTEMPTS, dispatch=lambda run: _dispatch_training(run.pk),
                    cancelled=lambda run: run.cancel_requested, ended=_reaped, eta_s=None,
                    give_up=lambda run: (f"the worker died or went silent {run.attempts} times (last: "
                                         f"{run.claimed_by or 'unknown'}); giving up. The last checkpoint (at or "
                                         f"before step {run.step}) is kept."))
    return {**counts, "redispatched": resent}
