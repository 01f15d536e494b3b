"""Paths under the data root (LTS_DATA_ROOT): :func:`confined_path` refuses anything that could leave it, and
:class:`DataError` is what every unusable data source raises (data.py and tokenizers.py both use them)."""
from __future__ import annotations

import os
from pathlib import Path

from searches.core.arch import ConfigError

__all__ = ["DataError", "confined_path"]


class DataError(ConfigError):
    """A data source is unusable (missing, empty, binary, outside the data root, offline ...).

    ``errors`` maps the offending field (``path``, ``name``, ``split``, ``text_field``, ``val_fraction``) to a
    message the web can show next to it.
    """


def confined_path(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """``root / relative`` resolved, refusing anything that could leave ``root``.

    Refused: any ``..`` component (even one that would stay inside: a path that needs one is a mistake or a probe),
    an absolute path outside the root, and a path whose symlinks resolve outside it. An absolute path inside the
    root is accepted. The path need not exist (the caller reports that).
    """
    root_path = Path(root).resolve()
    text = os.fspath(relative)
    if not text or "\x00" in text:
        raise DataError({"path": f"invalid path {text!r}"})
    candidate = Path(text)
    if ".." in candidate.parts:
        raise DataError({"path": f"'..' is not allowed in data paths: {text}"})
    joined = candidate if candidate.is_absolute() else root_path / candidate
    if candidate.is_absolute() and not _is_within(Path(os.path.abspath(joined)), root_path):
        raise DataError({"path": f"{text} is outside the data root {root_path}"})
    resolved = joined.resolve()  # follows every symlink along the way
    if not _is_within(resolved, root_path):
        raise DataError({"path": f"{text} leads outside the data root {root_path} (through a symlink)"})
    return resolved


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
