"""What every zoo service module needs: where data and artifacts live, and field-prefixed errors."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings

from searches.core.arch import ConfigError


def _data_root() -> Path:
    return Path(settings.LTS_DATA_ROOT)


def _artifact_root() -> Path:
    return Path(settings.LTS_ARTIFACT_ROOT)


def _prefixed(prefix: str, exc: ConfigError) -> dict[str, str]:
    return {f"{prefix}.{k}" if k not in ("config", prefix) else prefix: v for k, v in exc.errors.items()}


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename a complete staging folder (a sibling: the same file system) to ``target``, replacing a leftover of a
    rolled-back attempt with this id: the zoo never shows half a folder, and the rename is instant inside a
    transaction."""
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
