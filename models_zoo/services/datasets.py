"""Datasets: register (upload, folder under LTS_DATA_ROOT, Hugging Face) after checking they are readable; delete."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from lts_web.errors import Conflict
from models_zoo.core import DataError, HubSource, LocalSource, TextSource, confined_path, require_hub
from models_zoo.models import Dataset, TrainingRun
from models_zoo.services._common import _data_root

__all__ = ["dataset_source", "do_delete_dataset", "do_register_dataset"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def dataset_source(dataset: Dataset) -> TextSource:
    """The core source that reads this dataset (local paths confined to LTS_DATA_ROOT)."""
    if dataset.kind == Dataset.Kind.HUB:
        return HubSource(dataset.hub_name, dataset.hub_split or "train", dataset.hub_text_field or "text",
                         dataset.hub_config or None, dataset.hub_validation_split or None)
    return LocalSource(dataset.path, root=os.fspath(_data_root()))


def _check_local(relative: str) -> int:
    """Confine, then check that the file (or the first .txt file of the folder) is readable text; returns the size.
    Reads only the start of one file (LocalSource.check): a corpus of gigabytes is read once, by the worker that
    trains on it."""
    return LocalSource(relative, root=os.fspath(_data_root())).check()


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
