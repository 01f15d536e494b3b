"""Pareto frontier and hypervolume against brute force (property-based), constraints, and the 100k-point budget."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searches.core.pareto import (
    CONSTRAINT_LIMITS,
    Constraints,
    ConstraintsError,
    feasible_mask,
    hypervolume,
    pareto_front,
    pareto_mask,
    reference_point,
)

DIRECTIONS = st.sampled_from(["maximize", "minimize"])


@st.composite
def point_sets(draw: st.DrawFn, max_points: int = 40) -> tuple[np.ndarray, list[str]]:
    """Small integer grids, so ties and exact duplicates are frequent."""
    m = draw(st.integers(1, 3))
    n = draw(st.integers(0, max_points))
    values = draw(st.lists(st.integers(0, 5), min_size=n * m, max_size=n * m))
    directions = draw(st.lists(DIRECTIONS, min_size=m, max_size=m))
    return np.asarray(values, dtype=float).reshape(n, m), directions


def _dominates(a: np.ndarray, b: np.ndarray, maximize: list[bool]) -> bool:
    better_or_equal = [x >= y if up else x <= y for x, y, up in zip(a, b, maximize)]
    strictly = [x > y if up else x < y for x, y, up in zip(a, b, maximize)]
    return all(better_or_equal) and any(strictly)


def _brute_force_mask(points: np.ndarray, directions: list[str]) -> np.ndarray:
    maximize = [d == "maximize" for d in directions]
    return np.array([not any(_dominates(q, p, maximize) for q in points) for p in points], dtype=bool)


def _brute_force_hypervolume(points: np.ndarray, ref: np.ndarray, directions: list[str]) -> float:
    """Count the unit cells of the integer grid inside the union of the boxes between each point and ref."""
    low = np.minimum(points.min(axis=0), ref).astype(int)
    high = np.maximum(points.max(axis=0), ref).astype(int)
    volume = 0
    for cell in itertools.product(*(range(lo, hi) for lo, hi in zip(low, high))):
        for p in points:
            inside = True
            for c, x, r, d in zip(cell, p, ref, directions):
                # The cell [c, c+1] lies between ref and the point in this objective.
                inside &= (r <= c and c + 1 <= x) if d == "maximize" else (x <= c and c + 1 <= r)
            if inside:
                volume += 1
                break
    return float(volume)


@settings(max_examples=300, deadline=None)
@given(point_sets())
def test_frontier_matches_brute_force(case: tuple[np.ndarray, list[str]]) -> None:
    points, directions = case
    mask = pareto_mask(points, directions)
    np.testing.assert_array_equal(mask, _brute_force_mask(points, directions))
    front = pareto_front(points, directions)
    assert sorted(front.tolist()) == np.flatnonzero(mask).tolist()
    if len(front):
        first = points[front, 0]
        assert list(first) == sorted(first, reverse=directions[0] == "maximize")


@settings(max_examples=150, deadline=None)
@given(point_sets(max_points=12), st.data())
def test_hypervolume_matches_brute_force(case: tuple[np.ndarray, list[str]], data: st.DataObject) -> None:
    points, directions = case
    ref = np.asarray(data.draw(st.lists(st.integers(-1, 6), min_size=points.shape[1], max_size=points.shape[1])), dtype=float)
    expected = _brute_force_hypervolume(points, ref, directions) if len(points) else 0.0
    assert hypervolume(points, ref, directions) == pytest.approx(expected)
    # Dominated points add nothing: the frontier alone has the same volume.
    assert hypervolume(points[pareto_mask(points, directions)], ref, directions) == pytest.approx(expected)


def test_ties_and_duplicates() -> None:
    points = np.array([[10, 1.0], [10, 1.0], [10, 2.0], [5, 1.0], [12, 3.0], [12, 3.0]])
    # proxy up, latency down: both copies of (10, 1) and of (12, 3) are on the front; (10, 2) ties on proxy but is
    # slower, (5, 1) ties on latency but is smaller.
    assert pareto_mask(points, ["maximize", "minimize"]).tolist() == [True, True, False, False, True, True]
    assert pareto_front(points, ["maximize", "minimize"]).tolist() == [4, 5, 0, 1]
    assert pareto_mask(np.array([[1.0, 1.0]] * 4), ["minimize", "minimize"]).all()


def test_hypervolume_of_a_known_staircase_and_reference_handling() -> None:
    points = np.array([[5, 5], [4, 6], [2, 7], [7, 4]], dtype=float)
    assert hypervolume(points, [10, 10], ["minimize", "minimize"]) == 38.0
    # The same set seen as maximization of the negated values.
    assert hypervolume(-points, [-10, -10], ["maximize", "maximize"]) == 38.0
    # A point not strictly better than ref in every objective contributes nothing.
    assert hypervolume(np.array([[10.0, 1.0]]), [10, 10], ["minimize", "minimize"]) == 0.0
    assert hypervolume(np.zeros((0, 3)), [1, 1, 1], ["minimize"] * 3) == 0.0


def test_reference_point_is_beyond_the_worst_value() -> None:
    points = np.array([[1.0, 10.0], [3.0, 30.0]])
    ref = reference_point(points, ["maximize", "minimize"], margin=0.5)
    np.testing.assert_allclose(ref, [0.0, 40.0])
    assert hypervolume(points, ref, ["maximize", "minimize"]) > 0
    np.testing.assert_allclose(reference_point(np.array([[2.0, 2.0]]), ["maximize", "minimize"]), [1.9, 2.1])


def test_feasibility_and_constraints() -> None:
    points = np.array([[1, 5], [2, 6], [3, 7]], dtype=float)
    assert feasible_mask(points, [2, None], [None, 7]).tolist() == [False, True, True]
    assert feasible_mask(points).all()
    constraints = Constraints(min_proxy=100, max_proxy=300, max_latency=0.5)
    assert constraints.bounds() == {"proxy": (100, 300), "latency": (None, 0.5)}
    columns = {"proxy": [50, 100, 300, 301, 200], "latency": [0.1, 0.5, 0.5, 0.1, 0.6], "memory": [1e9] * 5}
    assert constraints.mask(columns).tolist() == [False, True, True, False, False]
    assert constraints.proxy_ok(100) and not constraints.proxy_ok(99)
    assert Constraints().mask({"proxy": [1, 2]}).tolist() == [True, True]
    with pytest.raises(ValueError, match="latency"):
        constraints.mask({"proxy": [1]})
    assert Constraints.from_dict(constraints.to_dict()) == constraints


@pytest.mark.parametrize(
    "data, field",
    [
        ({"min_proxy": 10, "max_proxy": 5}, "max_proxy"),
        ({"max_latency": -1}, "max_latency"),
        ({"max_memory": "lots"}, "max_memory"),
        ({"max_params": 5}, "max_params"),
    ],
)
def test_invalid_constraints(data: dict, field: str) -> None:
    with pytest.raises(ConstraintsError) as info:
        Constraints.from_dict(data)
    assert field in info.value.errors


@pytest.mark.parametrize("name", sorted(CONSTRAINT_LIMITS))
def test_constraints_have_upper_bounds(name: str) -> None:
    limit = CONSTRAINT_LIMITS[name]
    assert getattr(Constraints.from_dict({name: limit}), name) == limit
    for over in (limit * 10, float("inf")):
        with pytest.raises(ConstraintsError) as info:
            Constraints.from_dict({name: over})
        assert info.value.errors == {name: f"must be at most {limit:g} or null, got {over!r}"}


def test_invalid_points() -> None:
    with pytest.raises(ValueError, match="finite"):
        pareto_mask([[1.0, np.nan]], ["maximize", "minimize"])
    with pytest.raises(ValueError, match="direction"):
        pareto_mask([[1.0, 2.0]], ["maximize"])
    with pytest.raises(ValueError, match="'maximize' or 'minimize'"):
        pareto_mask([[1.0, 2.0]], ["max", "min"])
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask([1.0, 2.0], ["maximize", "minimize"])
    with pytest.raises(ValueError, match="ref"):
        hypervolume([[1.0, 2.0]], [1.0], ["minimize", "minimize"])


def test_100k_points_in_3_objectives_under_one_second() -> None:
    points = np.random.default_rng(0).random((100_000, 3))
    directions = ["maximize", "minimize", "minimize"]
    start = time.perf_counter()
    front = points[pareto_mask(points, directions)]
    volume = hypervolume(front, reference_point(points, directions), directions)
    assert time.perf_counter() - start < 1.0
    assert 0 < volume and len(front) < 1000
