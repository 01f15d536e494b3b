"""The logic of ``manage.py lts_arch``: architecture JSON lines in, one JSON result line out per input line.

Kept in the core (no Django) so that the command is a thin wrapper and the logic is tested without settings.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .arch import Architecture, ConfigError
from .evolution import MAX_SEED
from .space import PRESETS, SearchSpace, SearchSpaceError, get_space

__all__ = ["MAX_SAMPLES", "arch_lines", "arch_record", "load_space", "sample_lines"]

# Lines one `lts_arch --sample` writes: a million is ~300 MB of JSON, more than any search needs (gpt2-lts has 5,880).
MAX_SAMPLES = 1_000_000


class _Writer(Protocol):
    def write(self, text: str, /) -> Any: ...


def arch_record(arch: Architecture) -> dict[str, Any]:
    return {
        "archid": arch.archid,
        "non_embedding_params": arch.non_embedding_params,
        "total_params": arch.total_params,
        "valid": True,
    }


def _line_result(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"valid": False, "error": f"invalid JSON: {exc}"}
    try:
        return arch_record(Architecture.from_dict(data))
    except ConfigError as exc:
        return {"valid": False, "error": str(exc), "errors": exc.errors}


def arch_lines(lines_in: Iterable[str], out: _Writer) -> int:
    """Write one result line per non-blank input line; a bad line gives {"valid": false, "error", "line"} (and
    "errors" per field when the JSON parsed) and the next line is still read. Returns the number of invalid lines."""
    invalid = 0
    for number, line in enumerate(lines_in, start=1):
        if not line.strip():
            continue
        result = _line_result(line)
        if not result["valid"]:
            invalid += 1
            result["line"] = number  # blank lines are skipped, so say which input line failed
        out.write(json.dumps(result) + "\n")
    return invalid


def load_space(spec: str) -> SearchSpace:
    """A preset name, or the path of a JSON space document."""
    if spec in PRESETS or not spec.endswith(".json"):
        return get_space(spec)
    try:
        return SearchSpace.from_json(Path(spec).read_text())
    except OSError as exc:
        raise SearchSpaceError({"space": f"cannot read {spec}: {exc.strerror}"}) from None


def sample_lines(space: SearchSpace, count: int, seed: int, out: _Writer) -> None:
    """``count`` independent uniform samples of the space (repeats possible), each with its config."""
    errors = {}
    if not 0 <= count <= MAX_SAMPLES:
        errors["sample"] = f"must be from 0 to {MAX_SAMPLES:,}, got {count:,}"
    if not 0 <= seed <= MAX_SEED:
        errors["seed"] = f"must be from 0 to {MAX_SEED:,}, got {seed:,}"
    if errors:
        raise ConfigError(errors)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        arch = space.sample(rng)
        out.write(json.dumps({"config": arch.to_dict(), **arch_record(arch)}) + "\n")
