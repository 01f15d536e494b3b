"""Every state change of datasets, training runs and zoo models goes through a do_* function (STYLE.md).

User mistakes raise a ConfigError whose ``errors`` map a field to a message (the API answers 400 with them; the
worker fails the run with them, never retries). The worker side (claim, progress, finish, fail) changes a run only
while it holds the claim: every such write is a conditional UPDATE on (status running, claimed_by = this worker).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from models_zoo.core import (
    MIN_VOCAB_SIZE,
    DataError,
    HubSource,
    LocalSource,
    TextSource,
    TokenizerError,
    TrainConfig,
    TrainResult,
    architecture_from_hf_config,
    confined_path,
    export_model,
    require_hub,
    resolve_tokenizer,
)
from models_zoo.core.tokenizers import MAX_VOCAB_SIZE
from models_zoo.models import Dataset, TrainingRun, ZooModel
from searches.core.arch import Architecture, ConfigError
from searches.models import Candidate, Device, Measurement
from searches.queues import resend_lost

__all__ = [
    "Conflict",
    "HISTORY_POINTS",
    "TrainingPlan",
    "check_tokenizer_spec",
    "dataset_source",
    "do_cancel_training",
    "do_delete_dataset",
    "do_delete_model",
    "do_fail_training",
    "do_finish_training",
    "do_import_model",
    "do_reap_training",
    "do_register_dataset",
    "do_save_progress",
    "do_start_training",
    "do_stop_training",
    "do_training_heartbeat",
    "measurement_rows",
    "measurements_by_archid",
    "thin_history",
    "training_plan",
    "try_claim_training",
]

logger = logging.getLogger(__name__)
R = TrainingRun.Status
# A run's history keeps at most this many progress points (older training-only points are thinned first): a
# 100,000-step run reporting every 10 steps would otherwise store 10,000 points (~1 MB) rewritten every 2 s.
HISTORY_POINTS = 500
# Enough of a file to tell text from binary and UTF-8 from other encodings without reading a corpus of gigabytes.
_SNIFF_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# Files of a Hugging Face GPT-2 checkpoint folder worth keeping in the zoo (weights, configs, tokenizer, card).
_CHECKPOINT_FILES = re.compile(r"^(config\.json|generation_config\.json|.*\.safetensors|.*\.safetensors\.index\.json|"
                               r"pytorch_model.*\.bin|tokenizer.*\.json|special_tokens_map\.json|vocab\.json|"
                               r"merges\.txt|README\.md)$")


class Conflict(Exception):
    """The change is refused in the object's current state (the API answers 409)."""


def _data_root() -> Path:
    return Path(settings.LTS_DATA_ROOT)


def _artifact_root() -> Path:
    return Path(settings.LTS_ARTIFACT_ROOT)


def _prefixed(prefix: str, exc: ConfigError) -> dict[str, str]:
    return {f"{prefix}.{k}" if k not in ("config", prefix) else prefix: v for k, v in exc.errors.items()}


# ---- datasets -----------------------------------------------------------------------------------------------------


def dataset_source(dataset: Dataset) -> TextSource:
    """The core source that reads this dataset (local paths confined to LTS_DATA_ROOT)."""
    if dataset.kind == Dataset.Kind.HUB:
        return HubSource(dataset.hub_name, dataset.hub_split or "train", dataset.hub_text_field or "text",
                         dataset.hub_config or None, dataset.hub_validation_split or None)
    return LocalSource(dataset.path, root=os.fspath(_data_root()))


def _sniff(path: Path, shown: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise DataError({"path": f"{shown} is empty"})
    if b"\x00" in head:
        raise DataError({"path": f"{shown} looks binary (NUL bytes), not a text file"})
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sniff window
            raise DataError({"path": f"{shown} is not UTF-8 text (invalid byte at offset {exc.start})"}) from None


def _check_local(relative: str) -> int:
    """Confine, then check that the file (or some .txt file of the folder) is readable text; returns the size.

    Reads only the first 64 KiB of one file: a corpus of gigabytes is read once, by the worker that trains on it.
    """
    root = _data_root()
    path = confined_path(root, relative)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise DataError({"path": f"folder {relative} contains no .txt files"})
        for f in files:
            confined_path(root, f)  # a symlink inside the folder must not lead out of the root either
        _sniff(files[0], str(files[0].relative_to(path.parent)))
        return sum(f.stat().st_size for f in files)
    if not path.is_file():
        raise DataError({"path": f"{relative} does not exist under the data root"})
    _sniff(path, relative)
    return path.stat().st_size


def _check_hub(name: str, split: str, text_field: str) -> None:
    errors = {k: "this field is required for a hub dataset" for k, v in
              (("hub_name", name), ("hub_split", split), ("hub_text_field", text_field)) if not v.strip()}
    if errors:
        raise DataError(errors)
    try:
        require_hub()
    except DataError as exc:
        raise DataError({"hub_name": exc.errors.get("name", str(exc))}) from None


def do_register_dataset(*, owner, team, name: str, kind: str, path: str = "", upload=None,
                        copy_from: str | os.PathLike[str] | None = None, hub_name: str = "", hub_config: str = "",
                        hub_split: str = "train", hub_text_field: str = "text", hub_validation_split: str = "",
                        validation_fraction: float = 0.1) -> Dataset:
    """Register a dataset after checking it is readable (400s up front, not failed runs later).

    - upload: ``upload`` (a Django UploadedFile, at most LTS_MAX_UPLOAD_MB) or ``copy_from`` (a local file or
      folder, for the command line) is stored under LTS_DATA_ROOT/uploads/<id>/;
    - folder: ``path`` relative to LTS_DATA_ROOT (or absolute inside it), confined to it;
    - hub: a Hugging Face dataset; refused at once when this machine cannot reach the hub.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise DataError({"validation_fraction": f"must be in (0, 1), got {validation_fraction!r}"})
    if not name.strip():
        raise DataError({"name": "a name is required"})
    if Dataset.objects.filter(team=team, name=name).exists():
        raise DataError({"name": f"team {team.name} already has a dataset named {name!r}"})
    fields: dict[str, Any] = dict(team=team, owner=owner, name=name, kind=kind, validation_fraction=validation_fraction)
    if kind == Dataset.Kind.FOLDER:
        if not path:
            raise DataError({"path": "a path under the data root is required"})
        resolved = confined_path(_data_root(), path)
        root = _data_root().resolve()
        uploads = root / "uploads"
        if resolved.is_relative_to(uploads) or uploads.is_relative_to(resolved):
            # Other teams' uploaded files live there: a folder dataset must not reach into them.
            raise DataError({"path": f"{path} is or contains uploads/, where uploaded datasets are kept: "
                                     "name a corpus folder beside it"})
        relative = os.fspath(resolved.relative_to(root))
        return Dataset.objects.create(**fields, path=relative, size_bytes=_check_local(relative))
    if kind == Dataset.Kind.HUB:
        _check_hub(hub_name, hub_split, hub_text_field)
        return Dataset.objects.create(**fields, hub_name=hub_name.strip(), hub_config=hub_config.strip(),
                                      hub_split=hub_split.strip(), hub_text_field=hub_text_field.strip(),
                                      hub_validation_split=hub_validation_split.strip())
    if kind != Dataset.Kind.UPLOAD:
        raise DataError({"kind": f"must be one of {', '.join(Dataset.Kind.values)}, got {kind!r}"})
    if (upload is None) == (copy_from is None):
        raise DataError({"file": "a file is required"})
    limit = settings.LTS_MAX_UPLOAD_MB * 2**20
    if upload is not None and upload.size > limit:
        raise DataError({"file": f"{upload.size / 2**20:.1f} MB is over the upload limit of "
                                 f"{settings.LTS_MAX_UPLOAD_MB} MB (LTS_MAX_UPLOAD_MB); put large corpora in a "
                                 "folder under the data root instead"})
    with transaction.atomic():
        dataset = Dataset.objects.create(**fields)
        folder = _data_root() / "uploads" / str(dataset.pk)
        shutil.rmtree(folder, ignore_errors=True)  # left by a rolled-back registration with this id
        folder.mkdir(parents=True)
        try:
            if upload is not None:
                filename = _SAFE_NAME.sub("_", Path(upload.name or "").name).strip("._") or "data.txt"
                with (folder / filename).open("wb") as fh:
                    for chunk in upload.chunks():
                        fh.write(chunk)
                relative = f"uploads/{dataset.pk}/{filename}"
            else:
                source = Path(copy_from).expanduser().resolve()
                if source.is_dir():
                    shutil.copytree(source, folder / source.name, symlinks=False)
                elif source.is_file():
                    shutil.copy2(source, folder / source.name)
                else:
                    raise DataError({"path": f"{copy_from} does not exist"})
                relative = f"uploads/{dataset.pk}/{source.name}"
            dataset.size_bytes = _check_local(relative)
            if upload is not None:  # an upload is small: check all of it (UTF-8 throughout, not empty)
                LocalSource(relative, root=os.fspath(_data_root())).load()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        dataset.path = relative
        dataset.save(update_fields=["path", "size_bytes"])
    return dataset


def do_delete_dataset(dataset: Dataset) -> None:
    """Delete the row (and an upload's file). Runs keep its description; an active run needs it."""
    if dataset.training_runs.filter(status__in=TrainingRun.ACTIVE).exists():
        raise Conflict("a queued or running training run uses this dataset: cancel it first")
    folder = _data_root() / "uploads" / str(dataset.pk) if dataset.kind == Dataset.Kind.UPLOAD else None
    with transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).delete()
        if folder is not None:
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# ---- starting and stopping runs -----------------------------------------------------------------------------------


def check_tokenizer_spec(spec: str) -> None:
    """Raise TokenizerError({"tokenizer": ...}) unless ``spec`` names a usable tokenizer.

    gpt2-files:DIR and dir:DIR are loaded and validated now (DIR confined to LTS_DATA_ROOT; this catches the
    transformers-5 empty-vocabulary mistake too); bpe:N is checked for its size (it is trained on the data later).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TokenizerError({"tokenizer": "required: gpt2-files:DIR, bpe:VOCAB_SIZE or dir:DIR"})
    kind, _, value = spec.partition(":")
    try:
        if kind == "bpe":
            try:
                size = int(value)
            except ValueError:
                raise TokenizerError({"tokenizer": f"bpe: needs an integer vocabulary size, got {value!r}"}) from None
            if not MIN_VOCAB_SIZE <= size <= MAX_VOCAB_SIZE:
                raise TokenizerError({"tokenizer": f"bpe: vocabulary size must be in [{MIN_VOCAB_SIZE}, "
                                                   f"{MAX_VOCAB_SIZE}], got {size}"})
        else:
            resolve_tokenizer(spec, root=_data_root())
    except ConfigError as exc:  # DataError (path outside the root) or TokenizerError
        raise TokenizerError({"tokenizer": "; ".join(exc.errors.values())}) from None


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
    """Send the task only if this caller wins the right to (conditional update on an empty task_id)."""
    from workers.training import train_model

    task_id = str(uuid.uuid4())
    won = TrainingRun.objects.filter(pk=run_id, status=R.QUEUED, task_id="").update(
        task_id=task_id, dispatched_at=timezone.now())
    if won:
        transaction.on_commit(lambda: train_model.apply_async(args=[run_id], queue="train", task_id=task_id))


def do_cancel_training(run: TrainingRun) -> bool:
    """A queued run is cancelled now; a running one is asked to stop (its worker checkpoints and stops within a
    heartbeat). The last checkpoint stays. False when the run had already finished."""
    now = timezone.now()
    if TrainingRun.objects.filter(pk=run.pk, status=R.QUEUED).update(status=R.CANCELLED, cancel_requested=True,
                                                                      finished_at=now, eta_s=None):
        return True
    return bool(TrainingRun.objects.filter(pk=run.pk, status=R.RUNNING).update(cancel_requested=True))


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
    stale = now - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S)
    claimable = (Q(status=R.QUEUED)
                 | Q(status=R.RUNNING, heartbeat_at__lt=stale, attempts__lt=settings.LTS_TRAIN_MAX_ATTEMPTS)
                 | Q(status=R.RUNNING, claimed_by=worker))
    return bool(TrainingRun.objects.filter(claimable, pk=run_id, cancel_requested=False).update(
        status=R.RUNNING, claimed_by=worker, attempts=F("attempts") + 1, started_at=Coalesce("started_at", now),
        heartbeat_at=now, error="", finished_at=None))


def _claimed(run_id: int, worker: str):
    return TrainingRun.objects.filter(pk=run_id, status=R.RUNNING, claimed_by=worker)


def do_training_heartbeat(run_id: int, worker: str) -> str:
    """"ok", "cancel" (the user asked to stop) or "lost" (the run is no longer this worker's)."""
    if not _claimed(run_id, worker).update(heartbeat_at=timezone.now()):
        return "lost"
    cancel = TrainingRun.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first()
    return "cancel" if cancel else "ok"


def thin_history(history: list[dict[str, Any]], limit: int = HISTORY_POINTS) -> list[dict[str, Any]]:
    """Halve the older training-only points until the history fits ``limit`` (evaluations and the last point
    stay as long as they can), so a long run keeps its whole loss curve at a coarser grain."""
    while len(history) > limit:
        head, last = history[:-1], history[-1]
        thinned = [p for i, p in enumerate(head) if i % 2 == 0 or p.get("val_loss") is not None] + [last]
        history = thinned if len(thinned) < len(history) else head[::2] + [last]
    return history


def do_set_training_phase(run_id: int, worker: str, phase: str) -> bool:
    """What the run is doing before its first reported step ("tokenizing the data", ...); False when the claim was
    lost."""
    return bool(_claimed(run_id, worker).update(phase=phase[:60], heartbeat_at=timezone.now()))


def do_save_progress(run_id: int, worker: str, values: Mapping[str, Any], history: list[dict[str, Any]]) -> bool:
    """Store the latest figures and the history; False when the claim was lost."""
    return bool(_claimed(run_id, worker).update(**values, history=history, heartbeat_at=timezone.now()))


def do_stop_training(run_id: int, worker: str, result: TrainResult) -> str:
    """A run that stopped on request becomes cancelled, its checkpoint kept for a later look."""
    done = _claimed(run_id, worker).filter(cancel_requested=True).update(
        status=R.CANCELLED, finished_at=timezone.now(), step=result.step, tokens_seen=result.tokens_seen,
        elapsed_s=result.elapsed_s, eta_s=None)
    return "cancelled" if done else "lost-claim"


def do_fail_training(run_id: int, worker: str | None, reason: str) -> bool:
    rows = TrainingRun.objects.filter(pk=run_id).exclude(status__in=TrainingRun.FINISHED)
    if worker is not None:
        rows = rows.filter(claimed_by=worker)
    return bool(rows.update(status=R.FAILED, error=reason[:4000], finished_at=timezone.now(), eta_s=None))


def measurements_by_archid(archids: Iterable[str]) -> dict[str, list[Measurement]]:
    """Finished measurements of these architectures, in one query, grouped by archid (device name order)."""
    grouped: dict[str, list[Measurement]] = {}
    rows = (Measurement.objects.filter(archid__in=set(archids), status=Measurement.Status.DONE)
            .select_related("device").defer("details", "config").order_by("device__name", "batch_size", "seq_len"))
    for m in rows:
        grouped.setdefault(m.archid, []).append(m)
    return grouped


def measurement_rows(archids: Iterable[str]) -> list[dict[str, Any]]:
    """Every latency/memory measurement of these archids, as rows of the model card's table."""
    archids = list(dict.fromkeys(archids))
    grouped = measurements_by_archid(archids)
    rows = []
    for archid in archids:
        for m in grouped.get(archid, []):
            row = {"device": m.device.name, "hardware": m.device.hardware.get("cpu_model") or m.device.hostname,
                   "backend": m.backend, "mode": m.mode, "batch": m.batch_size, "seq_len": m.seq_len,
                   "threads": m.threads, "dtype": m.dtype, "on": m.device_type,
                   "latency_ms": m.latency_median_s * 1000 if m.latency_median_s is not None else None,
                   "p10_ms": m.latency_p10_s * 1000 if m.latency_p10_s is not None else None,
                   "p90_ms": m.latency_p90_s * 1000 if m.latency_p90_s is not None else None,
                   "memory_mb": m.peak_memory_mb}
            if len(archids) > 1:
                row["archid"] = archid
            rows.append(row)
    return rows


def _budget(config: Mapping[str, Any]) -> str:
    parts = [f"{config[k]:,} {unit}" for k, unit in (("max_steps", "steps"), ("max_tokens", "tokens"))
             if config.get(k)]
    if config.get("max_minutes"):
        parts.append(f"{config['max_minutes']:g} minutes")
    return " or ".join(parts)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def do_finish_training(run_id: int, worker: str, result: TrainResult, *, tokenizer_description: str = "") -> ZooModel | None:
    """Export the finished run to the zoo (config, safetensors, tokenizer, a card with every latency/memory
    measurement of its archid per device) and complete it. Idempotent: one zoo model per run (OneToOne), and only
    the worker holding the claim finishes; None when the claim was lost."""
    with transaction.atomic():
        run = (TrainingRun.objects.select_for_update(of=("self",)).select_related("dataset")
               .filter(pk=run_id, status=R.RUNNING, claimed_by=worker).first())
        if run is None:
            return None
        source = Architecture.from_dict(run.architecture)
        trained = result.arch
        model = ZooModel.objects.filter(training_run=run).first()
        if model is None:
            model = ZooModel.objects.create(
                team_id=run.team_id, owner_id=run.owner_id, name=run.name, archid=trained.archid,
                source_archid=source.archid if source.archid != trained.archid else "", config=trained.to_dict(),
                non_embedding_params=trained.non_embedding_params, total_params=trained.total_params,
                source=ZooModel.Source.TRAINED, training_run=run, val_loss=result.val_loss,
                val_ppl=result.val_perplexity, data_description=run.dataset_description,
                tokenizer_description=tokenizer_description or run.tokenizer,
                budget_description=_budget(run.config), tokens_seen=result.tokens_seen,
            )
            model.path = f"zoo/{model.pk}"
            _measure_own_architecture(model)
            export_model(run.run_dir, model.folder, measurements=measurement_rows(model.archids), title=run.name,
                         data_description=run.dataset_description,
                         tokenizer_description=tokenizer_description or None, overwrite=True)
            model.size_bytes = _folder_size(model.folder)
            model.save(update_fields=["path", "size_bytes"])
        TrainingRun.objects.filter(pk=run.pk).update(
            status=R.COMPLETED, finished_at=timezone.now(), step=result.step, tokens_seen=result.tokens_seen,
            elapsed_s=result.elapsed_s, val_loss=result.val_loss, val_ppl=result.val_perplexity,
            best_val_loss=result.best_val_loss, trained_archid=trained.archid, resumed_from=result.resumed_from,
            eta_s=0.0, train_loss=result.train_loss if result.train_loss is not None else F("train_loss"))
    return model


def do_reap_training(*, broker_lost: bool = False) -> dict[str, int]:
    """Running runs whose heartbeat stopped: re-queued to resume from their last checkpoint (at most
    LTS_TRAIN_MAX_ATTEMPTS claims in all), then failed with the reason; cancelled if a cancel was pending. Queued runs
    whose message is gone: sent again (searches.queues.resend_lost; ``broker_lost`` comes from
    searches.queues.broker_lost_data).

    Tolerates races: every change is a conditional UPDATE on the stale state it observed; a duplicate message is
    harmless because only one claim can win.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S)
    resent = resend_lost(TrainingRun.objects.filter(status=R.QUEUED).only("pk", "task_id"), lambda run: "train",
                         lambda run: _dispatch_training(run.pk), broker_lost=broker_lost)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "redispatched": resent}
    rows = TrainingRun.objects.filter(status=R.RUNNING, heartbeat_at__lt=stale).only(
        "pk", "heartbeat_at", "attempts", "claimed_by", "cancel_requested", "step")
    for run in rows:
        observed = TrainingRun.objects.filter(pk=run.pk, status=R.RUNNING, heartbeat_at=run.heartbeat_at)
        if run.cancel_requested:
            counts["cancelled"] += observed.update(status=R.CANCELLED, finished_at=now, eta_s=None)
        elif run.attempts >= settings.LTS_TRAIN_MAX_ATTEMPTS:
            reason = (f"the worker died or went silent {run.attempts} times (last: {run.claimed_by or 'unknown'}); "
                      f"giving up. The last checkpoint (at or before step {run.step}) is kept.")
            counts["failed"] += observed.update(status=R.FAILED, error=reason, finished_at=now, eta_s=None)
        elif observed.update(status=R.QUEUED, task_id=""):
            counts["requeued"] += 1
            with transaction.atomic():
                _dispatch_training(run.pk)
            logger.warning("re-queued training run %s after a silent worker (%s)", run.pk, run.claimed_by)
    return counts


# ---- the zoo ------------------------------------------------------------------------------------------------------


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w./-]+)?$")


def _hub_snapshot(source: str, revision: str | None) -> tuple[Path, str]:
    """Download org/name[/subfolder] (only the files a checkpoint needs) and return the local folder."""
    try:
        require_hub()
    except DataError as exc:
        raise DataError({"source": exc.errors.get("name", str(exc))}) from None
    from huggingface_hub import snapshot_download

    parts = source.split("/")
    repo_id, subfolder = "/".join(parts[:2]), "/".join(parts[2:])
    prefix = f"{subfolder}/" if subfolder else ""
    patterns = [prefix + p for p in ("config.json", "generation_config.json", "*.safetensors", "*.json", "merges.txt",
                                     "README.md")]
    try:
        local = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - the hub raises many types (not found, gated, HTTP, connection ...)
        raise DataError({"source": f"cannot download {source!r} from the hub: {type(exc).__name__}: {exc}"}) from exc
    return local / subfolder if subfolder else local, f"hub:{source}" + (f"@{revision}" if revision else "")


def _checkpoint_folder(source: str, *, confine: bool, revision: str | None) -> tuple[Path, str]:
    """(local folder, origin) of an import source: a folder (under LTS_DATA_ROOT when ``confine``) or a hub id."""
    text = source.strip()
    if not text:
        raise DataError({"source": "a checkpoint folder or a hub id is required"})
    if text.startswith("hub:"):
        return _hub_snapshot(text[4:], revision)
    if confine:
        try:
            folder = confined_path(_data_root(), text)
        except DataError as exc:
            raise DataError({"source": exc.errors["path"]}) from None
    else:
        folder = Path(text).expanduser().resolve()
    if folder.is_dir():
        return folder, text
    if not confine and _HUB_ID.match(text) and not text.startswith(("/", ".")):  # the command line guesses
        return _hub_snapshot(text, revision)
    raise DataError({"source": f"{text} is neither a checkpoint folder" + (" under the data root" if confine else "")
                               + " nor a hub id (org/name)"})


def _checkpoint_architecture(folder: Path) -> Architecture:
    """From config.json; dropatt 0.0 (the search spaces'), unless the folder is named by an archid that only
    its attn_pdrop reproduces (a gallery folder of microsoft/lts-gpt2-sm is named by its archid)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError({"source": f"{folder.name} has no config.json: not a Hugging Face checkpoint folder"}) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError({"source": f"cannot read {folder.name}/config.json: {exc}"}) from None
    try:
        arch = architecture_from_hf_config(config)
        attn = config.get("attn_pdrop")
        if isinstance(attn, (int, float)) and 0.0 <= attn < 1.0 and attn != arch.dropatt:
            named = replace(arch, dropatt=float(attn))
            if named.archid == folder.name:
                arch = named
    except ConfigError as exc:
        raise DataError({"source": "; ".join(f"{k}: {v}" for k, v in exc.errors.items())}) from None
    if not any(_CHECKPOINT_FILES.match(p.name) and p.name.endswith((".safetensors", ".bin")) for p in folder.iterdir()):
        raise DataError({"source": f"{folder.name} holds no weights (model.safetensors or pytorch_model.bin)"})
    return arch


def _load_check(folder: Path, arch: Architecture) -> None:
    """Load the weights once: a torn or mismatched checkpoint is refused now, not in a user's notebook later."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, RuntimeError ...
        raise DataError({"source": f"the weights in {folder.name} do not load: {type(exc).__name__}: {exc}"}) from None
    body = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("transformer.wte", "transformer.wpe")))
    if body != arch.non_embedding_params:
        raise DataError({"source": f"the weights hold {body:,} non-embedding parameters, the config implies "
                                   f"{arch.non_embedding_params:,}: not a plain GPT-2 checkpoint"})


def do_import_model(*, owner, team, source: str, name: str = "", confine: bool = True, revision: str | None = None,
                    profile_device: Device | None = None) -> ZooModel:
    """Copy a Hugging Face GPT-2 checkpoint into the zoo, with its archid and proxy computed from config.json.

    ``source``: a folder (relative to LTS_DATA_ROOT and confined to it, unless ``confine`` is False: the command
    line) or a hub id ``org/name[/subfolder]`` (``hub:`` forces it), fetched when online and refused at once when
    not. With ``profile_device`` its latency and memory are queued on that device (through the shared cache).
    """
    folder, origin = _checkpoint_folder(source, confine=confine, revision=revision)
    arch = _checkpoint_architecture(folder)
    _load_check(folder, arch)
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and _CHECKPOINT_FILES.match(p.name)]
    if confine and folder.is_relative_to(_data_root().resolve()):
        for f in files:
            confined_path(_data_root(), f)  # no symlink out of the data root
    with transaction.atomic():
        model = ZooModel.objects.create(
            team=team, owner=owner, name=(name or folder.name)[:200], archid=arch.archid, config=arch.to_dict(),
            non_embedding_params=arch.non_embedding_params, total_params=arch.total_params,
            source=ZooModel.Source.IMPORTED, origin=origin[:1000])
        model.path = f"zoo/{model.pk}"
        target = model.folder
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            for f in files:
                shutil.copyfile(f, tmp / f.name)  # follows a symlink (hub caches are symlinks to blobs)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        model.size_bytes = _folder_size(target)
        model.save(update_fields=["path", "size_bytes"])
        if profile_device is not None:
            _queue_profiling(arch, profile_device)
    return model


def _measure_own_architecture(model: ZooModel) -> int:
    """A model whose architecture is not the one searched (vocab_size is the tokenizer's): its own architecture is
    measured on every device and with every settings its searched one was, through the shared cache (a key measured
    before is not measured again). Returns the number of measurements requested."""
    if not model.source_archid:
        return 0
    from searches.services import do_request_measurement, measurement_settings

    arch = Architecture.from_dict(model.config)
    requested = 0
    for m in (Measurement.objects.filter(archid=model.source_archid, status=Measurement.Status.DONE)
              .select_related("device")):
        try:
            do_request_measurement(arch, m.device, measurement_settings(m))
        except ConfigError as exc:  # settings this architecture cannot take (a longer sequence than its context)
            logger.info("zoo model %s: not measured on %s: %s", model.pk, m.device.name, exc)
            continue
        requested += 1
    return requested


def _queue_profiling(arch: Architecture, device: Device) -> None:
    from searches.core.profiling import ProfileSettings
    from searches.services import do_request_measurement

    do_request_measurement(arch, device, ProfileSettings(seq_len=min(ProfileSettings.seq_len, arch.max_sequence_length)))


def do_delete_model(model: ZooModel) -> None:
    folder = model.folder if model.path else None
    with transaction.atomic():
        ZooModel.objects.filter(pk=model.pk).delete()
        if folder is not None:
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
