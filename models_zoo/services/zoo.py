"""The zoo: its models' measurements, importing a Hugging Face GPT-2 checkpoint, deleting a model."""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lts_web import queueing
from models_zoo.core import DataError, architecture_from_hf_config, confined_path, require_hub
from models_zoo.models import ZooImport, ZooModel
from models_zoo.services._common import _artifact_root, _data_root, _folder_size, _move_into_place
from searches.core.arch import Architecture, ConfigError
from searches.models import Device, Measurement
from searches.queues import resend_lost

logger = logging.getLogger(__name__)

__all__ = [
    "do_delete_model",
    "do_import_model",
    "do_reap_imports",
    "do_request_import",
    "do_run_import",
    "measure_own_architecture",
    "measurement_rows",
    "measurements_by_archid",
    "try_claim_import",
]

# Files of a Hugging Face GPT-2 checkpoint folder worth keeping in the zoo (weights, configs, tokenizer, card).
_CHECKPOINT_FILES = re.compile(r"^(config\.json|generation_config\.json|.*\.safetensors|.*\.safetensors\.index\.json|"
                               r"pytorch_model.*\.bin|tokenizer.*\.json|special_tokens_map\.json|vocab\.json|"
                               r"merges\.txt|README\.md)$")


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

    The files are copied to a staging folder first; the short transaction then only creates the row and renames
    the folder into place.
    """
    folder, origin = _checkpoint_folder(source, confine=confine, revision=revision)
    arch = _checkpoint_architecture(folder)
    _load_check(folder, arch)
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and _CHECKPOINT_FILES.match(p.name)]
    if confine and folder.is_relative_to(_data_root().resolve()):
        for f in files:
            confined_path(_data_root(), f)  # no symlink out of the data root
    zoo = _artifact_root() / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=zoo, prefix=".import.", suffix=".tmp"))
    target: Path | None = None
    try:
        for f in files:
            shutil.copyfile(f, staging / f.name)  # follows a symlink (hub caches are symlinks to blobs)
        with transaction.atomic():
            model = ZooModel.objects.create(
                team=team, owner=owner, name=(name or folder.name)[:200], archid=arch.archid, config=arch.to_dict(),
                non_embedding_params=arch.non_embedding_params, total_params=arch.total_params,
                source=ZooModel.Source.IMPORTED, origin=origin[:1000], size_bytes=_folder_size(staging))
            model.path = f"zoo/{model.pk}"
            target = model.folder
            _move_into_place(staging, target)
            model.save(update_fields=["path"])
            if profile_device is not None:
                _queue_profiling(arch, profile_device)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if target is not None:  # its row was rolled back
            shutil.rmtree(target, ignore_errors=True)
        raise
    return model


def measure_own_architecture(model: ZooModel) -> int:
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


# ---- hub imports, on a worker -------------------------------------------------------------------------------------


def do_request_import(*, owner, team, source: str, name: str = "", revision: str | None = None,
                      profile_device: Device | None = None) -> ZooImport:
    """Queue the import of a hub checkpoint (``hub:org/name[/subfolder]``) on a "train" worker: the download takes
    minutes, the request does not wait for it. Refused at once (DataError on ``source``) when the id is malformed or
    this machine cannot reach the hub."""
    hub_id = source.strip().removeprefix("hub:")
    if not _HUB_ID.match(hub_id):
        raise DataError({"source": f"{hub_id!r} is not a hub id (org/name[/subfolder])"})
    try:
        require_hub()
    except DataError as exc:
        raise DataError({"source": exc.errors.get("name", str(exc))}) from None
    with transaction.atomic():
        request = ZooImport.objects.create(team=team, owner=owner, source=f"hub:{hub_id}", name=name[:200],
                                           revision=(revision or "")[:100], profile_device=profile_device)
        _dispatch_import(request.pk)
    request.refresh_from_db()
    return request


def _dispatch_import(import_id: int) -> None:
    """Send the task only if this caller wins the right to (QueuedWorkQuerySet.dispatch_once)."""
    task_id = ZooImport.objects.dispatch_once(import_id)
    if task_id:
        queueing.send(queueing.IMPORT_HUB_MODEL, [import_id], queue="train", task_id=task_id)


def try_claim_import(import_id: int, worker: str) -> bool:
    """Conditional UPDATE (STYLE habit 2): queued, or running with a heartbeat so old that its worker is gone."""
    return ZooImport.objects.claim(import_id, worker, max_attempts=settings.LTS_TRAIN_MAX_ATTEMPTS,
                                   started_at=timezone.now())


def do_run_import(import_id: int, worker: str) -> str:
    """The worker's side of a claimed import: download, check and copy (do_import_model), then complete the row
    with its zoo model. A ConfigError (not found, not a GPT-2 checkpoint, offline) fails it with the message.
    Returns "completed", "failed" or "lost-claim"."""
    request = ZooImport.objects.select_related("owner", "team", "profile_device").get(pk=import_id)
    try:
        model = do_import_model(owner=request.owner, team=request.team, source=request.source, name=request.name,
                                revision=request.revision or None, profile_device=request.profile_device)
    except ConfigError as exc:
        message = "; ".join(exc.errors.values())
        return "failed" if ZooImport.objects.fail(import_id, worker, message, unless=ZooImport.FINISHED) else \
            "lost-claim"
    if ZooImport.objects.claimed(import_id, worker).update(status=ZooImport.Status.COMPLETED, model=model,
                                                           finished_at=timezone.now()):
        return "completed"
    do_delete_model(model)  # reaped and given to another worker meanwhile: theirs is the import
    return "lost-claim"


def do_reap_imports(*, broker_lost: bool = False) -> dict[str, int]:
    """Running imports whose heartbeat stopped: sent again (at most LTS_TRAIN_MAX_ATTEMPTS claims), then failed;
    queued ones whose message is gone: sent again (as do_reap_training)."""
    resent = resend_lost(ZooImport.objects.filter(status=ZooImport.Status.QUEUED).only("pk", "task_id"),
                         lambda row: "train", lambda row: _dispatch_import(row.pk), broker_lost=broker_lost)
    counts = ZooImport.objects.reap_stale(
        max_attempts=settings.LTS_TRAIN_MAX_ATTEMPTS, dispatch=lambda row: _dispatch_import(row.pk),
        give_up=lambda row: (f"the worker died or went silent {row.attempts} times (last: "
                             f"{row.claimed_by or 'unknown'}); giving up: import it again"))
    return {"requeued": counts["requeued"], "failed": counts["failed"], "redispatched": resent}
