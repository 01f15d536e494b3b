"""The measure-or-predict policy: optimistic dominance, seeded exploration, the design step (no Django)."""
from __future__ import annotations

import numpy as np
import pytest

from searches.core.arch import Architecture
from searches.core.cost_model import MIN_OBSERVATIONS
from searches.core.pareto import Constraints
from searches.core.policy import (
    choose_to_measure,
    design,
    design_top_up,
    greedy_hypervolume,
    optimistic_point,
    policy_rng,
    score_space,
)
from searches.core.space import get_space

OBJ = ("proxy", "latency", "memory")
SPACE = get_space("tiny")


def _arch(n_layer: int = 1, d_model: int = 64) -> Architecture:
    return next(a for a in SPACE if a.n_layer == n_layer and a.d_model == d_model)


def _pred(lat: tuple[float, float, float], mem: tuple[float, float, float]) -> dict:
    return {"latency": lat, "memory": mem}


def test_optimistic_point_takes_the_favourable_ends_and_the_exact_proxy():
    arch = _arch()
    point = optimistic_point(arch, _pred((2.0, 1.0, 3.0), (20.0, 10.0, 30.0)), OBJ)
    assert point == [float(arch.non_embedding_params), 1.0, 10.0]
    assert optimistic_point(arch, _pred((2.0, 1.0, 3.0), (20.0, 10.0, 30.0)), ("latency",)) == [1.0]


def test_a_candidate_is_measured_only_when_its_optimistic_bound_is_not_dominated():
    arch = _arch()
    proxy = float(arch.non_embedding_params)
    front = [[proxy, 1.5, 15.0]]  # measured: same proxy, 1.5 s, 15 MB
    rng = np.random.default_rng(0)
    hopeless = _pred((3.0, 2.0, 4.0), (30.0, 20.0, 40.0))     # even at best slower and larger
    overlapping = _pred((3.0, 1.0, 4.0), (30.0, 20.0, 40.0))  # could be faster than the frontier
    tied = _pred((1.5, 1.5, 2.0), (15.0, 15.0, 20.0))         # at best equal: not dominated (strictly)
    chosen = choose_to_measure([arch] * 3, [hopeless, overlapping, tied], front, OBJ, rng, exploration=0.0)
    assert chosen == [False, True, True]
    # The point prediction would be dominated, the interval's favourable end is not: measured (optimism).
    assert choose_to_measure([arch], [overlapping], front, OBJ, rng, exploration=0.0) == [True]
    # No measured frontier yet: nothing dominates, everything is measured.
    assert choose_to_measure([arch], [hopeless], [], OBJ, rng, exploration=0.0) == [True]


def test_a_candidate_that_breaks_a_constraint_even_at_best_is_skipped():
    arch = _arch()
    over = _pred((3.0, 2.0, 4.0), (30.0, 20.0, 40.0))
    edge = _pred((3.0, 1.0, 4.0), (30.0, 20.0, 40.0))
    tight = Constraints(max_latency=1.5)
    assert choose_to_measure([arch, arch], [over, edge], [], OBJ, np.random.default_rng(0), constraints=tight,
                             exploration=0.0) == [False, True]
    # A constraint on an objective the search does not optimise still uses that objective's prediction.
    assert choose_to_measure([arch], [over], [], ("proxy", "memory"), np.random.default_rng(0), constraints=tight,
                             exploration=0.0) == [False]


def test_exploration_share_is_seeded_and_about_its_share():
    arch = _arch()
    front = [[float(arch.non_embedding_params), 1.0, 10.0]]
    hopeless = [_pred((3.0, 2.0, 4.0), (30.0, 20.0, 40.0))] * 2000
    first = choose_to_measure([arch] * 2000, hopeless, front, OBJ, policy_rng(7, 3), exploration=0.05)
    again = choose_to_measure([arch] * 2000, hopeless, front, OBJ, policy_rng(7, 3), exploration=0.05)
    other = choose_to_measure([arch] * 2000, hopeless, front, OBJ, policy_rng(7, 4), exploration=0.05)
    assert first == again and first != other
    # 5% of 2000: binomial sd ~ 9.7, so 60-140 is far outside chance.
    assert 60 <= sum(first) <= 140
    assert not any(choose_to_measure([arch] * 50, hopeless[:50], front, OBJ, policy_rng(7, 3), exploration=0.0))
    with pytest.raises(ValueError, match="exploration"):
        choose_to_measure([arch], hopeless[:1], front, OBJ, policy_rng(1, 0), exploration=1.5)


def test_design_tops_up_to_the_model_minimum_spread_over_the_proxy_range():
    assert design_top_up(have=0, coming=10) == MIN_OBSERVATIONS - 10
    assert design_top_up(have=12, coming=10) == 0
    points = design(SPACE, 6, np.random.default_rng(0))
    assert len({a.archid for a in points}) == 6
    proxies = [a.non_embedding_params for a in SPACE]
    chosen = [a.non_embedding_params for a in points]
    assert min(chosen) == min(proxies) and max(chosen) == max(proxies)  # both ends of the proxy range
    # Deterministic, never an excluded (already measured or proposed) architecture, within the proxy constraint.
    assert [a.archid for a in design(SPACE, 6, np.random.default_rng(0))] == [a.archid for a in points]
    excluded = design(SPACE, 6, np.random.default_rng(0), exclude=[a.archid for a in points])
    assert not {a.archid for a in excluded} & {a.archid for a in points}
    limit = sorted(proxies)[len(proxies) // 2]
    bounded = design(SPACE, 5, np.random.default_rng(0), constraints=Constraints(max_proxy=limit))
    assert len(bounded) == 5 and all(a.non_embedding_params <= limit for a in bounded)
    assert design(SPACE, 0, np.random.default_rng(0)) == []


def test_epsilon_dominance_skips_points_within_a_factor_of_the_frontier():
    arch = _arch()
    proxy = float(arch.non_embedding_params)
    front = [[proxy, 1.0, 10.0]]
    slightly_better = _pred((0.99, 0.99, 0.99), (9.95, 9.95, 9.95))  # 1% faster, 0.5% smaller
    much_better = _pred((0.9, 0.9, 0.9), (9.0, 9.0, 9.0))
    rng = np.random.default_rng(0)
    plain = choose_to_measure([arch] * 2, [slightly_better, much_better], front, OBJ, rng, exploration=0.0)
    loose = choose_to_measure([arch] * 2, [slightly_better, much_better], front, OBJ, rng, exploration=0.0,
                              epsilon=0.02)
    assert plain == [True, True] and loose == [False, True]


DIRECTIONS = ("maximize", "minimize", "minimize")


def test_greedy_hypervolume_picks_by_added_volume_and_stops_at_the_smallest_gain():
    ref = [0.0, 10.0, 10.0]
    measured = [[5.0, 5.0, 5.0]]
    candidates = [
        [9.0, 2.0, 2.0],   # far beyond the frontier: the largest gain
        [5.0, 6.0, 6.0],   # dominated by the measured point: never
        [8.9, 2.1, 2.1],   # dominated by the first candidate: never reached (adds nothing once it is picked)
        [1.0, 1.0, 9.0],   # a corner of its own: some gain
    ]
    assert greedy_hypervolume(candidates, measured, DIRECTIONS, ref, 10) == [0, 3]
    assert greedy_hypervolume(candidates, measured, DIRECTIONS, ref, 1) == [0]
    # The corner adds 0.1% of the volume at most: a min_gain of 1% stops after the first.
    assert greedy_hypervolume(candidates, measured, DIRECTIONS, ref, 10, min_gain=0.01) == [0]
    assert greedy_hypervolume([], measured, DIRECTIONS, ref, 10) == []


def test_score_space_picks_the_frontier_it_predicts_and_is_seeded():
    archs = list(SPACE)
    proxy = np.array([float(a.non_embedding_params) for a in archs])
    latency = proxy / proxy.max() + 0.01 * np.arange(len(archs)) / len(archs)
    memory = 10.0 + proxy / 1e4
    predicted = {"latency": (latency, latency * 0.95, latency * 1.05), "memory": (memory, memory * 0.99, memory * 1.01)}
    picks = score_space(archs, predicted, [], OBJ, np.random.default_rng(1), k=5, exploration=0.0)
    assert 1 <= len(picks) <= 5 and len(set(picks)) == len(picks)
    # Each pick is on the predicted frontier of the whole space.
    from searches.core.pareto import pareto_mask
    mask = pareto_mask(np.column_stack([proxy, latency, memory]), list(DIRECTIONS))
    assert all(mask[i] for i in picks)
    again = score_space(archs, predicted, [], OBJ, np.random.default_rng(1), k=5, exploration=0.5)
    assert again == score_space(archs, predicted, [], OBJ, np.random.default_rng(1), k=5, exploration=0.5)
    assert again[: len(picks)] == picks and len(again) > len(picks)  # exploration adds draws after the greedy picks
    # A measured frontier that dominates every optimistic point leaves nothing to measure.
    best = [[float(proxy.max()) * 2, 0.0, 0.0]]
    assert score_space(archs, predicted, best, OBJ, np.random.default_rng(1), k=5, exploration=1.0) == []
    # A latency bound the favourable end already breaks rules an architecture out.
    tight = Constraints(max_latency=float(np.sort(latency * 0.95)[3]))
    bounded = score_space(archs, predicted, [], OBJ, np.random.default_rng(1), k=48, exploration=1.0,
                          constraints=tight)
    assert bounded and all(latency[i] * 0.95 <= tight.max_latency for i in bounded)
