"""Which proposed architectures to measure when a cost model predicts the rest (the search policy "predicted").

Pure Python (numpy), no Django. A candidate is measured when its optimistic point (the proxy exact, latency and
memory at the favourable end of their predicted intervals) is feasible and not dominated by the job's measured
feasible frontier: only then can its measurement still change that frontier, to the stated coverage of the
intervals. Of the others, a seeded share is measured anyway (exploration: a model that is wrong in some region
must be able to find out). Before a key has enough measurements for a model, ``design_top_up`` says how many
space-filling design points to add (``design``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .arch import Architecture
from .cost_model import MIN_OBSERVATIONS, space_filling_design
from .pareto import MAXIMIZE, MINIMIZE, OBJECTIVES, Constraints, hypervolume, pareto_mask
from .space import SearchSpace

__all__ = [
    "BATCH_DEFAULT",
    "BATCH_LIMITS",
    "EXPLORATION_DEFAULT",
    "EXPLORATION_LIMITS",
    "Interval",
    "MIN_GAIN_DEFAULT",
    "MIN_GAIN_LIMITS",
    "SCORE_SPACE_LIMIT",
    "choose_to_measure",
    "design",
    "design_top_up",
    "optimistic_point",
    "greedy_hypervolume",
    "policy_rng",
    "score_space",
]

Interval = tuple[float, float, float]  # (value, low, high)

# 5% of the skipped candidates measured anyway: with the default 15-20 candidates a generation, about one every
# generation, enough to check the model outside the frontier's neighbourhood without spending the savings.
EXPLORATION_DEFAULT = 0.05
EXPLORATION_LIMITS = (0.0, 1.0)
# The algorithm "scored" (score_space): architectures measured per round, and the smallest gain worth a measurement,
# as a share of the frontier's hypervolume. 10 and 0.001 measured 8% of what "measure all" measured for the same
# hypervolume in bench/policy_sim.py (gpt2-lts, 10 generations, 3 seeds), 10 and 0 measured 18% for 1.03x.
BATCH_DEFAULT, BATCH_LIMITS = 10, (1, 1000)
MIN_GAIN_DEFAULT, MIN_GAIN_LIMITS = 0.001, (0.0, 0.5)
# Spaces up to this size are scored whole each round (about 1 s of predictions and scoring for 100,000 here).
SCORE_SPACE_LIMIT = 100_000
# A fixed stream id mixed into the seed: the policy's draws never overlap the evolution's own stream.
_POLICY_STREAM = 0x5E1EC7


def policy_rng(seed: int, generation: int) -> np.random.Generator:
    """The exploration draws of one generation: a function of the job's seed and the generation only, so that a
    replayed or resumed step draws the same (and the evolution's stored RNG state is not touched)."""
    return np.random.default_rng([int(seed), int(generation), _POLICY_STREAM])


def optimistic_point(arch: Architecture, predicted: Mapping[str, Interval], objectives: Sequence[str]) -> list[float]:
    """The best values ``arch`` can have, to the intervals' coverage: the proxy exact (it is computed, not
    measured), each predicted objective at the favourable end of its interval."""
    point = []
    for name in objectives:
        if name == "proxy":
            point.append(float(arch.non_embedding_params))
            continue
        value, low, high = predicted[name]
        point.append(float(low if OBJECTIVES[name] == MINIMIZE else high))
    return point


def _dominated(point: np.ndarray, front: np.ndarray, maximise: np.ndarray, epsilon: float = 0.0) -> bool:
    """Whether some row of ``front`` is at least as good as ``point`` everywhere and strictly better somewhere;
    with ``epsilon`` > 0, whether some row is within a factor (1 + epsilon) of ``point`` everywhere (epsilon-
    dominance): ``point`` can then add only a thin slice to the frontier's hypervolume."""
    if front.size == 0:
        return False
    worse = np.where(maximise, point / (1.0 + epsilon), point * (1.0 + epsilon))
    signed_front = np.where(maximise, -front, front)  # every column minimised
    signed = np.where(maximise, -worse, worse)
    at_least = (signed_front <= signed).all(axis=1)
    if epsilon > 0:
        return bool(at_least.any())
    strictly = (signed_front < signed).any(axis=1)
    return bool((at_least & strictly).any())


def choose_to_measure(
    archs: Sequence[Architecture],
    predicted: Sequence[Mapping[str, Interval]],
    measured: Sequence[Sequence[float]],
    objectives: Sequence[str],
    rng: np.random.Generator,
    *,
    constraints: Constraints | None = None,
    exploration: float = EXPLORATION_DEFAULT,
    epsilon: float = 0.0,
) -> list[bool]:
    """For each of ``archs`` (with its ``predicted`` {"latency": (value, low, high), "memory": ...}), whether to
    measure it. ``measured``: the objective values (in ``objectives`` order) of the job's measured feasible
    candidates. A candidate whose optimistic latency or memory already breaks a constraint is skipped (it cannot
    become feasible); exploration draws one uniform number per candidate, in order, so the choice is a function
    of the inputs and the generator's state."""
    if len(archs) != len(predicted):
        raise ValueError(f"{len(archs)} architectures but {len(predicted)} predictions")
    low, high = EXPLORATION_LIMITS
    if not low <= exploration <= high:
        raise ValueError(f"exploration must be in [{low}, {high}], got {exploration!r}")
    maximise = np.array([OBJECTIVES[n] == MAXIMIZE for n in objectives])
    front = np.asarray(measured, dtype=float).reshape(-1, len(objectives))
    bounds = (constraints or Constraints()).bounds()
    draws = rng.random(len(archs))  # always drawn: the stream advances the same whatever the predictions
    chosen = []
    for arch, prediction, draw in zip(archs, predicted, draws):
        point = optimistic_point(arch, prediction, objectives)
        best = {n: v for n, v in zip(objectives, point)}
        for name in ("latency", "memory"):
            if name not in best and name in prediction:
                best[name] = float(prediction[name][1])
        feasible = all(best[n] <= hi for n, (_, hi) in bounds.items() if n in best and hi is not None)
        promising = feasible and not _dominated(np.asarray(point), front, maximise, epsilon)
        chosen.append(bool(promising or draw < exploration))
    return chosen


def design_top_up(have: int, coming: int, need: int = MIN_OBSERVATIONS) -> int:
    """How many design points to add so that the finished (``have``) and requested (``coming``) measurements of a
    key reach ``need``, the minimum for a cost model."""
    return max(0, need - have - coming)


def design(space: SearchSpace, n: int, rng: np.random.Generator, *, exclude: Sequence[str] = (),
           constraints: Constraints | None = None) -> list[Architecture]:
    """``n`` architectures spread over the proxy range and the shape dimensions (cost_model.space_filling_design),
    none in ``exclude`` (their archids: measured or proposed already), within the proxy constraint; fewer when the
    space has no more."""
    if n <= 0:
        return []
    constraints = constraints or Constraints()
    asked = n
    while True:
        picked = space_filling_design(space, asked, rng, exclude=exclude)
        kept = [a for a in picked if constraints.proxy_ok(a.non_embedding_params)]
        if len(kept) >= n or len(picked) < asked:
            return kept[:n]
        asked *= 2



def greedy_hypervolume(candidates: Sequence[Sequence[float]] | np.ndarray,
                       measured: Sequence[Sequence[float]] | np.ndarray, directions: Sequence[str],
                       ref: Sequence[float], k: int, *, min_gain: float = 0.0) -> list[int]:
    """Up to ``k`` indices of ``candidates`` (predicted objective points), each the one that adds most hypervolume
    (against ``ref``) to ``measured`` plus the ones picked before it; stops early when the best gain is at most
    ``min_gain`` times the current hypervolume.

    Only the candidates no other candidate dominates are scored: a dominated point never adds more than the point
    dominating it, and nothing once that one is picked, so greedy never reaches it (the result is the same)."""
    maximise = np.array([d == MAXIMIZE for d in directions])
    points = np.asarray(candidates, dtype=float).reshape(-1, len(directions))
    base = np.asarray(measured, dtype=float).reshape(-1, len(directions))
    if len(points) == 0 or k <= 0:
        return []
    pool = [int(i) for i in np.flatnonzero(pareto_mask(points, directions))
            if not _dominated(points[i], base, maximise)]
    current = base.tolist()
    volume = hypervolume(current, ref, directions) if current else 0.0
    picked: list[int] = []
    while pool and len(picked) < k:
        gains = [hypervolume(current + [points[i].tolist()], ref, directions) - volume for i in pool]
        best = int(np.argmax(gains))
        if gains[best] <= max(min_gain * volume, 0.0):
            break
        index = pool.pop(best)
        picked.append(index)
        current.append(points[index].tolist())
        volume += gains[best]
    return picked


def score_space(
    archs: Sequence[Architecture],
    predicted: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    measured: Sequence[Sequence[float]],
    objectives: Sequence[str],
    rng: np.random.Generator,
    *,
    k: int,
    min_gain: float = MIN_GAIN_DEFAULT,
    exploration: float = EXPLORATION_DEFAULT,
    constraints: Constraints | None = None,
) -> list[int]:
    """The algorithm "scored": which of ``archs`` (every unmeasured architecture of a space, with the cost model's
    ``predicted`` (value, low, high) arrays for latency and memory) to measure this round, in order.

    A candidate qualifies when its optimistic point is feasible and not dominated by ``measured`` (the job's measured
    feasible points, in ``objectives`` order), as in choose_to_measure. Of those, up to ``k`` are picked greedily by
    the hypervolume their predicted point adds to the measured frontier (greedy_hypervolume, stopping once the best
    gain is below ``min_gain`` of the hypervolume), then each of the ``k`` slots adds, with probability
    ``exploration``, one qualifying architecture drawn at random (a model wrong in some region must be able to find
    out). A function of the inputs and the generator's state."""
    names = list(objectives)
    directions = [OBJECTIVES[n] for n in names]
    maximise = np.array([d == MAXIMIZE for d in directions])
    n = len(archs)
    if n == 0:
        return []
    bounds = (constraints or Constraints()).bounds()
    proxy = np.array([float(a.non_embedding_params) for a in archs])
    columns = {"proxy": (proxy, proxy, proxy), **predicted}
    value = np.column_stack([columns[name][0] for name in names])
    optimistic = np.column_stack([columns[name][2] if OBJECTIVES[name] == MAXIMIZE else columns[name][1]
                                  for name in names])
    feasible = np.ones(n, dtype=bool)
    for name, (_, high) in bounds.items():
        if high is not None and name in predicted:
            feasible &= predicted[name][1] <= high  # the favourable end already breaks it: cannot become feasible
    front = np.asarray(measured, dtype=float).reshape(-1, len(names))
    qualifying = [i for i in range(n) if feasible[i] and not _dominated(optimistic[i], front, maximise)]
    every = np.vstack([value[qualifying], front]) if qualifying else front
    ref = [0.0 if m else float(every[:, j].max()) * 1.1 for j, m in enumerate(maximise)] if len(every) else []
    order = greedy_hypervolume(value[qualifying], front, directions, ref, k, min_gain=min_gain) if qualifying else []
    picked = [qualifying[i] for i in order]
    draws = rng.random(k)  # always drawn: the stream advances the same whatever the predictions
    chosen = set(picked)
    rest = [i for i in qualifying if i not in chosen]
    for draw in draws:
        if draw < exploration and rest:
            picked.append(rest.pop(int(rng.integers(len(rest)))))
    return picked
