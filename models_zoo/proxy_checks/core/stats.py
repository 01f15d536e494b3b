"""How well a predictor (the LTS proxy, total parameters, d_model) ranks trained models by validation perplexity.

Point estimates are scipy's (``spearmanr``; ``kendalltau``, variant b, which corrects for ties). The 95% intervals
are percentile bootstraps over models: resample the K (predictor, perplexity) pairs with replacement, recompute the
coefficient, take the 2.5th and 97.5th percentiles. The resampled coefficients are computed for all resamples at
once (ranks with ``scipy.stats.rankdata(axis=1)``, tau-b from pair signs), because a page that polls a running check
recomputes them: 2,000 resamples of both coefficients through scipy's scalar functions took 1.6 s per predictor here,
batched 15 ms (K = 12). A resample that draws one model K times has no ranking (the coefficient is undefined): it is
dropped and counted, not turned into zero.

An interval that contains zero is called inconclusive, whatever the estimate says.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _scipy

__all__ = [
    "JUDGE_MODELS",
    "MIN_MODELS",
    "Coefficient",
    "bootstrap_interval",
    "concordance",
    "correlate",
    "kendall_batch",
    "spearman_batch",
    "summarize",
]

# Below 3 models a rank correlation is +-1 or undefined: nothing is measured.
MIN_MODELS = 3
# Below 5 models no ranking can be told from chance: even a perfect one of 4 models has a two-sided Kendall p of
# 2/4! = 0.083 (of 3: 0.33), while its bootstrap interval collapses to [-1, -1] and looks decisive.
JUDGE_MODELS = 5
# The test's level: an interval that excludes zero while the exact test cannot reject "no ranking" at 5% is an
# artefact of resampling too few models.
JUDGE_P = 0.05
# Resamples of (resamples x pairs) floats handled per block: K = 64 has 2,016 pairs, so 2,000 resamples at once would
# hold ~32 MB per array; blocks of 2**20 floats stay under 10 MB.
_BLOCK = 2**20


@dataclass(frozen=True)
class Coefficient:
    """A rank correlation with its bootstrap interval. None where undefined (fewer than 3 models, a constant)."""

    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    resamples: int  # bootstrap resamples with a defined coefficient (of those drawn)
    n: int = 0  # models (pairs) it was computed from

    @property
    def verdict(self) -> str:
        """"negative" / "positive" when the whole interval is on one side of zero, else "inconclusive";
        "too_small" when the sample cannot support a verdict (fewer than JUDGE_MODELS models, or an interval that
        excludes zero while the test's p is JUDGE_P or more); "undefined" without an estimate."""
        if self.estimate is None or self.low is None or self.high is None:
            return "undefined"
        decided = self.high < 0 or self.low > 0
        if self.n < JUDGE_MODELS or (decided and self.p_value is not None and self.p_value >= JUDGE_P):
            return "too_small"
        if self.high < 0:
            return "negative"
        if self.low > 0:
            return "positive"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _clean(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def spearman_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``x`` and ``y`` (shape (B, n)): Pearson's r of the average ranks, as
    scipy.stats.spearmanr computes it; NaN for a row whose x or y is constant."""
    rx = _scipy.rankdata(x, axis=1)
    ry = _scipy.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / denominator
    return np.clip(rho, -1.0, 1.0)


def kendall_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair (shape (B, n)), as scipy.stats.kendalltau: (concordant - discordant) /
    sqrt(pairs untied in x * pairs untied in y); NaN for a row whose x or y is constant."""
    n = x.shape[1]
    i, j = np.triu_indices(n, k=1)
    out = np.empty(x.shape[0])
    rows = max(1, _BLOCK // max(len(i), 1))
    for start in range(0, x.shape[0], rows):
        sx = np.sign(x[start:start + rows, j] - x[start:start + rows, i])
        sy = np.sign(y[start:start + rows, j] - y[start:start + rows, i])
        denominator = np.sqrt(np.abs(sx).sum(axis=1) * np.abs(sy).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + rows] = (sx * sy).sum(axis=1) / denominator
    return np.clip(out, -1.0, 1.0)


_BATCH = {"spearman": spearman_batch, "kendall": kendall_batch}


def bootstrap_interval(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, method: str, *,
                       resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float | None, float | None, int]:
    """(low, high, defined resamples): the percentile bootstrap interval of ``method`` ("spearman" or "kendall")
    over paired resamples of the models. Deterministic for a seed. (None, None, n) when fewer than half of the
    resamples have a defined coefficient."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xs)
    if n < MIN_MODELS:
        return None, None, 0
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n))
    values = _BATCH[method](xs[index], ys[index])
    values = values[np.isfinite(values)]
    if len(values) < resamples / 2:
        return None, None, len(values)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), len(values)


def concordance(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The share of model pairs (untied in both) in which the one with the larger ``x`` has the lower ``y``: for
    the proxy against perplexity, how often "more parameters" picked the better model of a pair."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(xs), k=1)
    product = np.sign(xs[j] - xs[i]) * np.sign(ys[j] - ys[i])
    decided = product != 0
    return float((product[decided] < 0).mean()) if decided.any() else None


def correlate(x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, Coefficient]:
    """Spearman's rho and Kendall's tau-b of x against y, each with its bootstrap interval (same resamples)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} values, y {len(ys)}")
    out: dict[str, Coefficient] = {}
    for method, scalar in (("spearman", _scipy.spearmanr), ("kendall", _scipy.kendalltau)):
        if len(xs) < MIN_MODELS or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            out[method] = Coefficient(None, None, None, None, 0, len(xs))
            continue
        result = scalar(xs, ys)
        low, high, defined = bootstrap_interval(xs, ys, method, resamples=resamples, confidence=confidence, seed=seed)
        out[method] = Coefficient(_clean(result.statistic), low, high, _clean(result.pvalue), defined, len(xs))
    return out


def summarize(points: Sequence[Mapping[str, float]], predictors: Sequence[str], response: str, *,
              resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """For each predictor: rho and tau against ``response`` with intervals, and the pair concordance. JSON-safe."""
    y = [float(p[response]) for p in points]
    out: dict[str, Any] = {}
    for name in predictors:
        x = [float(p[name]) for p in points]
        coefficients = correlate(x, y, resamples=resamples, confidence=confidence, seed=seed)
        out[name] = {**{k: c.to_dict() for k, c in coefficients.items()},
                     "concordance": concordance(x, y) if len(x) >= 2 else None}
    return out
