"""Which proposed architectures to measure when a cost model predicts the rest (the search policy "predicted").

Pure Python (numpy), no Django. A candidate is measured when its optimistic point (the proxy exact, latency and
memory at the favourable end of their predicted intervals) is feasible and not dominated by the job's measured
feasible frontier: only then can its measurement still change that frontier, to the stated coverage of the
intervals. Of the others, a seeded share is measured anyway (exploration: a model that is wrong in some region
must be able to find out). Before a key has enough measurements for a model, ``design_top_up`` says how many
space-filling design points to add (``design``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .arch import Architecture
from .cost_model import MIN_OBSERVATIONS, space_filling_design
from .pareto import MAXIMIZE, MINIMIZE, OBJECTIVES, Constraints
from .space import SearchSpace

__all__ = [
    "EXPLORATION_DEFAULT",
    "EXPLORATION_LIMITS",
    "Interval",
    "choose_to_measure",
    "design",
    "design_top_up",
    "optimistic_point",
    "policy_rng",
]

Interval = tuple[float, float, float]  # (value, low, high)

# 5% of the skipped candidates measured anyway: with the default 15-20 candidates a generation, about one every
# generation, enough to check the model outside the frontier's neighbourhood without spending the savings.
EXPLORATION_DEFAULT = 0.05
EXPLORATION_LIMITS = (0.0, 1.0)
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


def _dominated(point: np.ndarray, front: np.ndarray, maximise: np.ndarray) -> bool:
    """Whether some row of ``front`` is at least as good as ``point`` everywhere and strictly better somewhere."""
    if front.size == 0:
        return False
    signed_front = np.where(maximise, -front, front)  # every column minimised
    signed = np.where(maximise, -point, point)
    at_least = (signed_front <= signed).all(axis=1)
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
        promising = feasible and not _dominated(np.asarray(point), front, maximise)
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
