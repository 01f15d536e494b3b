"""Cost models: predicted latency and peak memory of GPT-2 decoders on one device with one set of profiling settings.

Pure Python (numpy, scipy), no Django, no Celery. A model is fit on the finished measurements of one measurement key
(device, backend, batch size, sequence length, threads, mode, dtype, device type) and predicts, for an architecture
of the same key, a value and an interval with a stated coverage.

Features are analytic costs of the forward pass that the profiler times (``features``): the FLOPs of the attention
projections, of the attention scores (which grow with the sequence length squared), of the MLP and of the LM head,
the elements the memory-bound kernels touch (softmax over the scores, layer norms and GELU, the logits), the weight
bytes, and the layer count (per-layer overheads). Two families are fit and the one with the lower cross-validated
error is kept (``fit_cost_model``):

- ``nnls``: non-negative least squares of the value on those terms, weighted by 1/value so that the fit minimises
  relative error (a small model's 20 ms counts as much as a large one's 2 s). Every term is a cost, so a negative
  coefficient would be noise: the constraint keeps extrapolation sane.
- ``loglinear``: a power law, least squares of log(value) on log(term); it wins where costs are not additive (a
  machine whose cache effects bend the curve).

Intervals are conformal in log space: the half-width q is the ceil((1 - alpha)(n + 1))-th smallest of n residuals
|log(measured / predicted)|, so an interval is [pred / e^q, pred * e^q]. Two sets of residuals give a q each, and the
interval takes the larger:

- K-fold held-out residuals (cross-conformal): right when new measurements are exchangeable with the fitted ones.
- Residuals on later measurements, when the observations say when they were measured (``measured_at``): each block
  of measurements predicted by the model fit on everything measured before it, as a search uses the model. These
  carry what exchangeable folds cannot: a search moves toward its frontier, and a shared host runs at different
  speeds in different hours (measured here: slow phases of the host added 3-5% to every latency for minutes at a
  time; BENCHMARKS.md, "Cost-model intervals").

The same predictions give the model's error figures: MAPE, Spearman and coverage on held-out folds, and MAPE and
coverage on later measurements, where each block is judged by the interval the model had before it (``later_*``):
the check of the stated coverage as a search meets it.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.optimize import nnls
from scipy.stats import spearmanr

from .arch import Architecture
from .profiling.settings import DECODE_STEPS, ProfileSettings
from .space import SearchSpace

__all__ = [
    "COST_MODEL_VERSION",
    "FAMILIES",
    "MIN_OBSERVATIONS",
    "TARGETS",
    "CostModel",
    "NotEnoughData",
    "Observation",
    "TargetModel",
    "design_matrix",
    "features",
    "fitted_on_digest",
    "fit_cost_model",
    "heldout_report",
    "space_filling_design",
]

COST_MODEL_VERSION = 2
TARGETS = ("latency", "memory")
FAMILIES = ("nnls", "loglinear")
# Below this many measurements of a key there is no model: the largest term set has 10 coefficients, and the
# 10-fold held-out residuals behind the interval need at least ~15 points for the 90% quantile to be an order
# statistic (ceil(0.9 * 16) = 15 of 15 held-out residuals) rather than the maximum.
MIN_OBSERVATIONS = 16
_FOLDS = 10
# Later measurements: at most this many blocks (refits) in the check, each of at least _BLOCK rows; the residuals on
# later measurements widen the interval once there are at least _MIN_LATER of them (ceil(0.9 * 21) = 19 <= 20).
_MAX_BLOCKS = 20
_BLOCK = 10
_MIN_LATER = 20
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

_LATENCY_TERMS = ("intercept", "layers", "attn_proj_flops", "attn_score_flops", "softmax_elems", "mlp_flops",
                  "hidden_elems", "mlp_elems", "head_flops", "weight_bytes")
_MEMORY_TERMS = ("intercept", "weight_bytes", "logits_bytes", "score_bytes", "mlp_act_bytes", "hidden_bytes",
                 "kv_bytes", "layers")
TERMS = {"latency": _LATENCY_TERMS, "memory": _MEMORY_TERMS}


class NotEnoughData(ValueError):
    """Too few measurements of a key to fit a model (``have`` of ``need``)."""

    def __init__(self, have: int, need: int = MIN_OBSERVATIONS):
        self.have, self.need = have, need
        super().__init__(f"{have} finished measurements of this key; a cost model needs at least {need}")


@dataclass(frozen=True)
class Observation:
    """One finished measurement: the architecture, what the profiler reported and, optionally, when (any clock that
    increases: seconds since the epoch). With ``measured_at`` on every observation, the fit also checks and widens
    its intervals on later measurements."""

    arch: Architecture
    latency_s: float
    memory_mb: float
    measured_at: float | None = None

    def value(self, target: str) -> float:
        return self.latency_s if target == "latency" else self.memory_mb


def features(arch: Architecture, settings: ProfileSettings) -> dict[str, float]:
    """Analytic costs of one timed forward of ``arch`` under ``settings`` (what the profiler runs).

    prefill: one forward over batch x seq_len tokens, no KV cache. decode: one single-token step (the profiler
    reports the mean of DECODE_STEPS of them) attending over a cache of about seq_len positions.
    """
    L, d, di, h, V = arch.n_layer, arch.d_model, arch.d_inner, arch.n_head, arch.vocab_size
    B, T = settings.batch_size, settings.seq_len
    nbytes = _DTYPE_BYTES[settings.dtype]
    weights = float(arch.total_params) * nbytes
    if settings.mode == "decode":
        tokens, context = B, T + DECODE_STEPS / 2  # one new token per sequence, attending over the cache
        score_elems = B * h * context
        kv = 2.0 * L * B * (T + DECODE_STEPS) * d * nbytes
    else:
        tokens, context = B * T, T
        score_elems = B * h * T * T
        kv = 0.0
    return {
        "intercept": 1.0,
        "layers": float(L),
        "attn_proj_flops": 8.0 * L * tokens * d * d,          # q, k, v and the output projection: 4 d x d matmuls
        "attn_score_flops": 4.0 * L * tokens * context * d,   # q k^T and attention x v over every head
        "softmax_elems": float(L) * score_elems,
        "mlp_flops": 4.0 * L * tokens * d * di,
        "hidden_elems": float(L) * tokens * d,                # layer norms, residual adds
        "mlp_elems": float(L) * tokens * di,                  # GELU
        "head_flops": 2.0 * tokens * d * V,
        "weight_bytes": weights,
        "logits_bytes": 4.0 * tokens * V,                     # logits come out in float32
        "score_bytes": float(score_elems) * nbytes,           # one layer's attention matrix at a time
        "mlp_act_bytes": float(tokens) * di * nbytes,
        "hidden_bytes": float(tokens) * d * nbytes,
        "kv_bytes": kv,
    }


def design_matrix(archs: Sequence[Architecture], settings: ProfileSettings, target: str) -> np.ndarray:
    """The n x terms matrix of ``TERMS[target]`` for ``archs``."""
    terms = TERMS[target]
    rows = [features(a, settings) for a in archs]
    return np.array([[row[t] for t in terms] for row in rows], dtype=float).reshape(len(rows), len(terms))


# ---- one target ---------------------------------------------------------------------------------------------------


def _fit_family(family: str, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients of ``family`` for the (already selected) columns of X; X has the intercept in column 0."""
    if family == "nnls":
        # Columns scaled to unit maximum: nnls works on the raw numbers, and FLOPs (1e12) beside 1.0 would leave the
        # small terms at the solver's tolerance.
        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        A = X / scale / y[:, None]
        coef, _ = nnls(A, np.ones_like(y), maxiter=50 * X.shape[1])
        return coef / scale
    logs = _log_columns(X)
    coef, *_ = np.linalg.lstsq(logs, np.log(y), rcond=None)
    return coef


def _log_columns(X: np.ndarray) -> np.ndarray:
    """[1, log(term) for each non-constant positive column]; constant columns fold into the intercept."""
    out = [np.ones(X.shape[0])]
    for j in range(1, X.shape[1]):
        out.append(np.log(np.maximum(X[:, j], 1e-300)))
    return np.column_stack(out)


def _predict_family(family: str, coef: np.ndarray, X: np.ndarray) -> np.ndarray:
    if family == "nnls":
        return X @ coef
    return np.exp(_log_columns(X) @ coef)


def _usable_columns(X: np.ndarray, family: str) -> np.ndarray:
    """Columns that carry information for this key: non-zero everywhere for the power law, and not constant."""
    keep = [0]
    for j in range(1, X.shape[1]):
        col = X[:, j]
        if family == "loglinear" and not (col > 0).all():
            continue
        if np.ptp(col) <= 1e-12 * max(1.0, float(np.abs(col).max())):
            continue  # constant over the key (e.g. the LM head's vocabulary term in a one-vocabulary space)
        keep.append(j)
    if family == "loglinear":
        # A power law in every analytic term over-fits 16 points; keep the few that explain most: total FLOPs-like
        # terms are collinear, so the three with the widest spread (in log) carry the shape.
        spreads = [(np.ptp(np.log(X[:, j])), j) for j in keep[1:]]
        keep = [0] + sorted(j for _, j in sorted(spreads, reverse=True)[:3])
    return np.array(keep)


def _kfold(n: int, folds: int) -> list[np.ndarray]:
    """Deterministic interleaved folds (sorted input rows stay spread over every fold)."""
    k = min(folds, n)
    return [np.arange(i, n, k) for i in range(k)]


def _conformal_q(residuals: np.ndarray, coverage: float) -> float:
    """The ceil(coverage (n + 1))-th smallest residual; infinite when n is too small for that order statistic."""
    n = residuals.size
    rank = math.ceil(coverage * (n + 1))
    if rank > n:
        return math.inf
    return float(np.sort(residuals)[rank - 1])


@dataclass(frozen=True)
class TargetModel:
    """A fitted model of one target (latency in s or memory in MB) for one key."""

    target: str
    family: str
    terms: tuple[str, ...]
    coef: tuple[float, ...]
    log_halfwidth: float          # interval = [pred / e^q, pred * e^q]
    coverage: float               # the interval's nominal coverage
    heldout_mape: float           # of the K-fold held-out predictions
    heldout_spearman: float
    heldout_coverage: float       # share of held-out measurements inside an interval of the same half-width
    # The check on later measurements (each block predicted by the model fit before it, with that model's interval):
    # how many were predicted that way, their MAPE and the share inside the interval; 0 and None before there are
    # any (no measured_at, or no measurement after the first MIN_OBSERVATIONS).
    later_n: int = 0
    later_mape: float | None = None
    later_coverage: float | None = None

    def predict(self, archs: Sequence[Architecture], settings: ProfileSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, low, high) arrays for ``archs`` under ``settings``."""
        full = design_matrix(archs, settings, self.target)
        index = [TERMS[self.target].index(t) for t in self.terms]
        X = full[:, index]
        value = _predict_family(self.family, np.asarray(self.coef), X)
        # A non-negative model with an all-zero row (impossible for a real architecture) would predict 0.
        value = np.maximum(value, 1e-12)
        spread = math.exp(self.log_halfwidth) if math.isfinite(self.log_halfwidth) else math.inf
        return value, value / spread, value * spread

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["terms"], out["coef"] = list(self.terms), list(self.coef)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetModel:
        return cls(**{**data, "terms": tuple(data["terms"]), "coef": tuple(float(c) for c in data["coef"])})


def _heldout(family: str, X: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """Predictions of each row from a model fit on the other folds."""
    pred = np.empty_like(y)
    for test in _kfold(len(y), folds):
        train = np.setdiff1d(np.arange(len(y)), test)
        cols = _usable_columns(X[train], family)
        coef = _fit_family(family, X[train][:, cols], y[train])
        pred[test] = _predict_family(family, coef, X[test][:, cols])
    return np.maximum(pred, 1e-12)


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(pred / y - 1.0)))


def _spearman(y: np.ndarray, pred: np.ndarray) -> float:
    if len(y) < 3 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        return float("nan")
    return float(spearmanr(y, pred).statistic)


def _later_blocks(n: int, start: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of the later-measurement check: rows from ``start`` on, in at most _MAX_BLOCKS blocks
    of at least _BLOCK rows."""
    if n <= start:
        return []
    size = max(_BLOCK, math.ceil((n - start) / _MAX_BLOCKS))
    return [(i, min(i + size, n)) for i in range(start, n, size)]


def _halfwidth(kfold: np.ndarray, later: np.ndarray, coverage: float) -> float:
    """The interval's log half-width: the larger conformal quantile of the two residual sets (the later one once it
    has _MIN_LATER residuals)."""
    q = _conformal_q(kfold, coverage)
    if later.size >= _MIN_LATER:
        q = max(q, _conformal_q(later, coverage))
    return q


def _later(family: str, X: np.ndarray, y: np.ndarray, coverage: float, folds: int,
           start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The later-measurement check on rows in time order: for each block, the prediction of the model fit on the rows
    before it, and whether the block's measurement lay inside that model's interval (its half-width from the rows
    before the block, as ``_fit_target`` computes it). Returns (row indices, predictions, inside)."""
    rows, preds, inside = [], [], []
    residuals: list[np.ndarray] = []
    for lo, hi in _later_blocks(len(y), start):
        train = slice(0, lo)
        cols = _usable_columns(X[train], family)
        coef = _fit_family(family, X[train][:, cols], y[train])
        pred = np.maximum(_predict_family(family, coef, X[lo:hi][:, cols]), 1e-12)
        kfold = np.abs(np.log(y[train] / _heldout(family, X[train], y[train], folds)))
        before = np.concatenate(residuals) if residuals else np.empty(0)
        q = _halfwidth(kfold, before, coverage)
        r = np.abs(np.log(y[lo:hi] / pred))
        rows.append(np.arange(lo, hi))
        preds.append(pred)
        inside.append(r <= q)
        residuals.append(r)
    if not rows:
        return np.empty(0, dtype=int), np.empty(0), np.empty(0, dtype=bool)
    return np.concatenate(rows), np.concatenate(preds), np.concatenate(inside)


def _fit_target(target: str, X: np.ndarray, y: np.ndarray, coverage: float, folds: int,
                order: np.ndarray | None = None, start: int = MIN_OBSERVATIONS) -> tuple[TargetModel, np.ndarray]:
    """The model of the family with the lower held-out MAPE, and that family's held-out predictions. ``order``: the
    rows in the order they were measured, for the later-measurement check (None: no check)."""
    best: tuple[float, str, np.ndarray] | None = None
    for family in FAMILIES:
        held = _heldout(family, X, y, folds)
        error = _mape(y, held)
        if best is None or error < best[0]:
            best = (error, family, held)
    assert best is not None
    error, family, held = best
    residuals = np.abs(np.log(y / held))
    later: dict[str, Any] = {"later_n": 0, "later_mape": None, "later_coverage": None}
    later_residuals = np.empty(0)
    if order is not None:
        Xo, yo = X[order], y[order]
        rows, pred, inside = _later(family, Xo, yo, coverage, folds, start)
        if rows.size:
            later_residuals = np.abs(np.log(yo[rows] / pred))
            later = {"later_n": int(rows.size), "later_mape": _mape(yo[rows], pred),
                     "later_coverage": float(np.mean(inside))}
    q = _halfwidth(residuals, later_residuals, coverage)
    cols = _usable_columns(X, family)
    coef = _fit_family(family, X[:, cols], y)
    terms = tuple(TERMS[target][j] for j in cols)
    model = TargetModel(target=target, family=family, terms=terms, coef=tuple(float(c) for c in coef),
                        log_halfwidth=q, coverage=coverage, heldout_mape=error, heldout_spearman=_spearman(y, held),
                        heldout_coverage=float(np.mean(residuals <= q)), **later)
    return model, held


# ---- both targets, one key ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """Latency and memory models of one key, with what they were fit on: versioned and JSON-serialisable."""

    settings: ProfileSettings
    latency: TargetModel
    memory: TargetModel
    measurements: int
    fitted_on: str                # sha1 of the sorted archids behind the fit: a refit on the same data is the same
    fitted_at: str
    version: int = COST_MODEL_VERSION
    # Each measurement behind the fit, with what a model fit without its fold predicted for it (a predicted-vs-
    # measured chart): {"archid": [...], "latency_s": [...], "latency_pred": [...], "memory_mb": [...], ...}.
    heldout: dict[str, list[Any]] = field(default_factory=dict)

    def predict(self, archs: Sequence[Architecture]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{"latency": (value, low, high) in s, "memory": (value, low, high) in MB} for ``archs``."""
        return {"latency": self.latency.predict(archs, self.settings),
                "memory": self.memory.predict(archs, self.settings)}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "settings": self.settings.to_dict(), "latency": self.latency.to_dict(),
                "memory": self.memory.to_dict(), "measurements": self.measurements, "fitted_on": self.fitted_on,
                "fitted_at": self.fitted_at, "heldout": {k: list(v) for k, v in self.heldout.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostModel:
        if data.get("version") != COST_MODEL_VERSION:
            raise ValueError(f"cost model version {data.get('version')!r}; this code reads {COST_MODEL_VERSION}")
        return cls(settings=ProfileSettings.from_dict(data["settings"]),
                   latency=TargetModel.from_dict(data["latency"]), memory=TargetModel.from_dict(data["memory"]),
                   measurements=int(data["measurements"]), fitted_on=str(data["fitted_on"]),
                   fitted_at=str(data["fitted_at"]), heldout=dict(data.get("heldout") or {}))


def fitted_on_digest(archids: Sequence[str]) -> str:
    """The ``fitted_on`` of a fit on these archids: sha1 of the sorted distinct ids. A caller compares it with a
    stored fit's to know whether a refit would see other measurements."""
    return hashlib.sha1("\n".join(sorted(set(archids))).encode()).hexdigest()


def _check_observations(observations: Sequence[Observation]) -> list[Observation]:
    seen: dict[str, Observation] = {}
    for obs in observations:
        for name in ("latency_s", "memory_mb"):
            value = getattr(obs, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{obs.arch.archid}: {name} must be a positive finite number, got {value!r}")
        if obs.measured_at is not None and not (isinstance(obs.measured_at, (int, float))
                                                and math.isfinite(obs.measured_at)):
            raise ValueError(f"{obs.arch.archid}: measured_at must be a finite number or None, got {obs.measured_at!r}")
        seen[obs.arch.archid] = obs  # one measurement per archid and key: the cache's unique key
    # Sorted by archid: the fit (and its folds) does not depend on the order the measurements were read in.
    return [seen[k] for k in sorted(seen)]


def fit_cost_model(settings: ProfileSettings, observations: Sequence[Observation], *, coverage: float = 0.9,
                   folds: int = _FOLDS, min_observations: int = MIN_OBSERVATIONS,
                   now: datetime | None = None) -> CostModel:
    """Fit latency and memory models on the finished measurements of one key. Raises NotEnoughData below
    ``min_observations`` distinct architectures. When every observation has ``measured_at``, the intervals are also
    checked and widened on later measurements (module docstring)."""
    if not 0.5 <= coverage < 1:
        raise ValueError(f"coverage must be in [0.5, 1), got {coverage}")
    rows = _check_observations(observations)
    if len(rows) < max(min_observations, 3):
        raise NotEnoughData(len(rows), max(min_observations, 3))
    archs = [o.arch for o in rows]
    times = [o.measured_at for o in rows]
    # Time order, ties by archid (rows are in archid order and the sort is stable).
    order = None if any(t is None for t in times) else np.argsort(np.array(times, dtype=float), kind="stable")
    start = max(min_observations, 3)
    models = {}
    heldout: dict[str, list[Any]] = {"archid": [a.archid for a in archs]}
    for target, unit in zip(TARGETS, ("latency_s", "memory_mb")):
        X = design_matrix(archs, settings, target)
        y = np.array([o.value(target) for o in rows], dtype=float)
        models[target], held = _fit_target(target, X, y, coverage, folds, order, start)
        heldout[unit], heldout[f"{target}_pred"] = y.tolist(), held.tolist()
    digest = fitted_on_digest([a.archid for a in archs])
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return CostModel(settings=settings, latency=models["latency"], memory=models["memory"], measurements=len(rows),
                     fitted_on=digest, fitted_at=stamp, heldout=heldout)


def heldout_report(model: CostModel, observations: Sequence[Observation]) -> dict[str, dict[str, float]]:
    """MAPE, Spearman and interval coverage of ``model`` on measurements it was not fit on."""
    rows = _check_observations(observations)
    if not rows:
        raise ValueError("no held-out measurements")
    predicted = model.predict([o.arch for o in rows])
    out = {}
    for target in TARGETS:
        y = np.array([o.value(target) for o in rows])
        value, low, high = predicted[target]
        out[target] = {"n": len(rows), "mape": _mape(y, value), "spearman": _spearman(y, value),
                       "coverage": float(np.mean((y >= low) & (y <= high)))}
    return out


# ---- what to measure first ----------------------------------------------------------------------------------------


def _shape_coordinates(archs: Sequence[Architecture]) -> np.ndarray:
    """Each architecture as a point in [0, 1]^5: log n_layer, d_model, d_inner, n_head and proxy, min-max scaled."""
    raw = np.log(np.array([[a.n_layer, a.d_model, a.d_inner, a.n_head, max(1, a.non_embedding_params)]
                           for a in archs], dtype=float))
    low, span = raw.min(axis=0), np.ptp(raw, axis=0)
    span[span == 0] = 1.0
    return (raw - low) / span


def space_filling_design(space: SearchSpace, n: int, rng: np.random.Generator, *, pool: int = 10_000,
                         exclude: Sequence[str] = ()) -> list[Architecture]:
    """``n`` architectures of ``space`` spread over the proxy range and the shape dimensions (greedy maximin in
    log-scaled coordinates, starting from the smallest and the largest proxy), deterministic given ``rng``.

    Spaces of up to ``pool`` architectures are scored whole; larger ones through a uniform sample of ``pool``.
    Architectures whose archid is in ``exclude`` (already measured) are not chosen but count as design points.
    """
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    if space.size <= pool:
        candidates = list(space)
    else:
        unique: dict[str, Architecture] = {}
        for _ in range(pool * 4):
            arch = space.sample(rng)
            unique.setdefault(arch.archid, arch)
            if len(unique) >= pool:
                break
        candidates = sorted(unique.values(), key=lambda a: a.archid)
    done = set(exclude)
    points = _shape_coordinates(candidates)
    chosen: list[int] = []
    fixed = [i for i, a in enumerate(candidates) if a.archid in done]
    free = [i for i, a in enumerate(candidates) if a.archid not in done]
    if not free or n == 0:
        return []
    nearest = np.full(len(candidates), np.inf)
    for i in fixed:
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    if not fixed:
        proxies = np.array([candidates[i].non_embedding_params for i in free])
        # Ties broken by archid order (candidates are in a fixed order), never by the rng: the design is a function
        # of the space, n and the pool.
        for i in (free[int(np.argmin(proxies))], free[int(np.argmax(proxies))]):
            if i not in chosen and len(chosen) < n:
                chosen.append(i)
                nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    available = np.zeros(len(candidates), dtype=bool)
    available[free] = True
    available[chosen] = False
    while len(chosen) < n and available.any():
        score = np.where(available, nearest, -1.0)
        i = int(np.argmax(score))
        chosen.append(i)
        available[i] = False
        nearest = np.minimum(nearest, np.linalg.norm(points - points[i], axis=1))
    return [candidates[i] for i in chosen]
