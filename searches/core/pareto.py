"""Pareto frontier, feasibility constraints and hypervolume over 1 to 3 objectives with explicit directions.

Dominance: a dominates b when a is at least as good in every objective and strictly better in one. The frontier is
every point that no other point dominates, so duplicates of a frontier point are all on the frontier (none dominates
the other), and a point tied with a frontier point in one objective but worse in another is not. Both the frontier
and the hypervolume come from moocore (O(n log n) dimension sweeps for 2 and 3 objectives): 100,000 points in
3 objectives take ~20 ms on one CPU core.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import moocore
import numpy as np
from numpy.typing import ArrayLike

from .arch import ConfigError

__all__ = [
    "CONSTRAINT_LIMITS",
    "MAXIMIZE",
    "MINIMIZE",
    "OBJECTIVES",
    "Constraints",
    "ConstraintsError",
    "Direction",
    "feasible_mask",
    "hypervolume",
    "pareto_front",
    "pareto_mask",
    "reference_point",
]

Direction = Literal["maximize", "minimize"]
MAXIMIZE: Direction = "maximize"
MINIMIZE: Direction = "minimize"

# The project's objectives and their directions: proxy = non-embedding parameters (a stand-in for quality),
# latency in seconds, memory = peak memory in MB, as the profiler reports them.
OBJECTIVES: dict[str, Direction] = {"proxy": MAXIMIZE, "latency": MINIMIZE, "memory": MINIMIZE}


def _points(points: ArrayLike, directions: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n points x m objectives), got shape {array.shape}")
    if not 1 <= array.shape[1] <= 3 or array.shape[1] != len(directions):
        raise ValueError(f"need 1 to 3 objectives and one direction per column: {array.shape[1]} columns, {len(directions)} directions")
    bad = [d for d in directions if d not in (MAXIMIZE, MINIMIZE)]
    if bad:
        raise ValueError(f"directions must be 'maximize' or 'minimize', got {bad}")
    if array.size and not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(f"objective values must be finite; row {row} is {array[row].tolist()}")
    return array, [d == MAXIMIZE for d in directions]


def pareto_mask(points: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n x m), all duplicates of a frontier point included."""
    array, maximise = _points(points, directions)
    if len(array) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(array, maximise=maximise, keep_weakly=True), dtype=bool)


def pareto_front(points: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Indices of the non-dominated rows, sorted by the first objective from best to worst (ties by index)."""
    array, maximise = _points(points, directions)
    index = np.flatnonzero(pareto_mask(array, directions))
    key = -array[index, 0] if maximise[0] else array[index, 0]
    return index[np.argsort(key, kind="stable")]


def feasible_mask(
    points: ArrayLike,
    lower: Sequence[float | None] | None = None,
    upper: Sequence[float | None] | None = None,
) -> np.ndarray:
    """Rows with lower[j] <= points[:, j] <= upper[j] for every bound given (None: unbounded). Bounds are inclusive."""
    array = np.asarray(points, dtype=float)
    mask = np.ones(len(array), dtype=bool)
    for bounds, compare in ((lower, np.greater_equal), (upper, np.less_equal)):
        for j, bound in enumerate(bounds or ()):
            if bound is not None:
                mask &= compare(array[:, j], bound)
    return mask


def hypervolume(points: ArrayLike, ref: ArrayLike, directions: Sequence[str]) -> float:
    """Volume dominated by ``points`` and bounded by the reference point ``ref`` (moocore, exact).

    ``ref`` is in the objectives' own units and directions: for a maximized objective it is a lower bound, for a
    minimized one an upper bound. Points that are not strictly better than ``ref`` in every objective contribute
    nothing; dominated points and duplicates are harmless. Compare hypervolumes only under the same ``ref``
    (see reference_point).
    """
    array, maximise = _points(points, directions)
    ref_array = np.asarray(ref, dtype=float)
    if ref_array.shape != (array.shape[1],) or not np.isfinite(ref_array).all():
        raise ValueError(f"ref must hold {array.shape[1]} finite values, got {ref!r}")
    if len(array) == 0:
        return 0.0
    return float(moocore.hypervolume(array, ref=ref_array, maximise=maximise))


def reference_point(points: ArrayLike, directions: Sequence[str], margin: float = 0.1) -> np.ndarray:
    """The worst value of each objective, moved outward by ``margin`` times its range (1 when the range is 0), so
    that the extreme frontier points still add volume. Compute it once over the union of the sets you compare."""
    array, maximise = _points(points, directions)
    if len(array) == 0:
        raise ValueError("a reference point needs at least one point")
    low, high = array.min(axis=0), array.max(axis=0)
    pad = margin * np.where(high > low, high - low, 1.0)
    return np.where(maximise, low - pad, high + pad)


# Upper bounds of the constraints, far beyond any architecture or measurement (so a bound there means "none"):
# arch.ARCH_LIMITS allow at most ~1.6e12 non-embedding parameters; a day per forward; a petabyte of memory.
CONSTRAINT_LIMITS: dict[str, float] = {"min_proxy": 1e15, "max_proxy": 1e15, "max_latency": 86_400.0,
                                       "max_memory": 1e9}


class ConstraintsError(ConfigError):
    """Constraints are invalid. ``errors`` maps field name -> message."""


@dataclass(frozen=True)
class Constraints:
    """Feasibility bounds, all inclusive and optional: proxy in non-embedding parameters, latency in seconds,
    memory in MB. The proxy bounds are checked before any measurement (the proxy is analytic)."""

    min_proxy: float | None = None
    max_proxy: float | None = None
    max_latency: float | None = None
    max_memory: float | None = None

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
                errors[name] = f"must be a non-negative number or null, got {value!r}"
            elif value is not None and not value <= CONSTRAINT_LIMITS[name]:
                errors[name] = f"must be at most {CONSTRAINT_LIMITS[name]:g} or null, got {value!r}"
        if (not errors and self.min_proxy is not None and self.max_proxy is not None
                and self.min_proxy > self.max_proxy):
            errors["max_proxy"] = f"must be at least min_proxy ({self.min_proxy}), got {self.max_proxy}"
        if errors:
            raise ConstraintsError(errors)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Constraints:
        data = data or {}
        if not isinstance(data, Mapping):
            raise ConstraintsError({"constraints": f"must be a JSON object, got {type(data).__name__}"})
        unknown = {k: "unknown constraint" for k in data if k not in cls.__dataclass_fields__}
        if unknown:
            raise ConstraintsError(unknown)
        return cls(**data)

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """(lower, upper) per bounded objective ("proxy", "latency", "memory"); unbounded ones are left out."""
        every = {"proxy": (self.min_proxy, self.max_proxy), "latency": (None, self.max_latency), "memory": (None, self.max_memory)}
        return {n: b for n, b in every.items() if b != (None, None)}

    def proxy_ok(self, proxy: float) -> bool:
        return (self.min_proxy is None or proxy >= self.min_proxy) and (self.max_proxy is None or proxy <= self.max_proxy)

    def mask(self, columns: Mapping[str, ArrayLike]) -> np.ndarray:
        """Feasible rows, given equal-length objective columns by name; a bound whose column is absent raises."""
        lengths = {len(np.asarray(c)) for c in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"need at least one column, all of the same length; got lengths {sorted(lengths)}")
        bounds = self.bounds()
        missing = [n for n in bounds if n not in columns]
        if missing:
            raise ValueError(f"constraints bound {missing} but no such column was given")
        if not bounds:
            return np.ones(lengths.pop(), dtype=bool)
        array = np.column_stack([np.asarray(columns[n], dtype=float) for n in bounds])
        return feasible_mask(array, [lo for lo, _ in bounds.values()], [hi for _, hi in bounds.values()])
