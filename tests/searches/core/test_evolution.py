"""The evolutionary search step: archai semantics, reproducibility, resume from a stored RNG state, dedupe."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from searches.core.arch import Architecture
from searches.core.evolution import (
    MAX_SEED,
    PARAM_LIMITS,
    Evaluated,
    SearchParams,
    SearchParamsError,
    frontier,
    new_rng_state,
    propose_generation,
    propose_random,
    rng_from_state,
    rng_state,
    run_search,
)
from searches.core.pareto import Constraints, pareto_mask
from searches.core.space import PRESETS

GPT2_LTS = PRESETS["gpt2-lts"]
TINY = PRESETS["tiny"]


def fake_measure(arch: Architecture) -> dict[str, float]:
    """Deterministic stand-ins with the real trade-off: bigger models are slower and use more memory."""
    flops = arch.n_layer * arch.d_model * (4 * arch.d_model + 2 * arch.d_inner) + arch.d_model * arch.vocab_size
    return {"latency": flops * 1e-11 + arch.n_layer * 2e-4, "memory": arch.total_params * 4 / 2**20 + 30.0}


def _ids(history: Any) -> list[str]:
    return [e.arch.archid for e in history]


def test_same_seed_same_search_and_other_seed_differs() -> None:
    params = SearchParams(generations=5)
    a = run_search(fake_measure, GPT2_LTS, params)
    b = run_search(fake_measure, GPT2_LTS, params)
    c = run_search(fake_measure, GPT2_LTS, params, seed=2)
    assert _ids(a.history) == _ids(b.history) and a.rng_state == b.rng_state
    assert _ids(a.history) != _ids(c.history)


@pytest.mark.parametrize("propose", [propose_generation, propose_random], ids=["evolution", "random"])
def test_no_architecture_is_proposed_twice(propose: Any) -> None:
    result = run_search(fake_measure, GPT2_LTS, SearchParams(generations=10), propose=propose)
    ids = _ids(result.history)
    assert len(ids) == len(set(ids)) > 100
    assert all(e.arch in GPT2_LTS for e in result.history)


def test_resume_from_stored_state_continues_the_same_stream() -> None:
    params = SearchParams(generations=6, seed=11)
    uninterrupted = run_search(fake_measure, GPT2_LTS, params)

    # Three generations, then everything goes through JSON as a database row would, then three more.
    history: list[Evaluated] = []
    state = new_rng_state(params.seed)
    for generation in range(6):
        if generation == 3:
            stored = json.dumps(
                {"history": [[e.arch.to_dict(), e.objectives, e.generation] for e in history], "rng": state}
            )
            loaded = json.loads(stored)
            history = [Evaluated(Architecture.from_dict(c), o, g) for c, o, g in loaded["history"]]
            state = loaded["rng"]
        batch = propose_generation(history, GPT2_LTS, params, state)
        state = batch.rng_state
        history += [Evaluated(c.arch, fake_measure(c.arch), generation) for c in batch.candidates]
    assert _ids(history) == _ids(uninterrupted.history)
    assert state == uninterrupted.rng_state


def test_rng_state_is_json_safe_and_exact() -> None:
    rng = np.random.default_rng(5)
    rng.random(3)
    state = rng_state(rng)
    assert json.loads(json.dumps(state)) == state
    assert all(not isinstance(v, int) or abs(v) < 2**53 for v in state.values())
    assert rng_from_state(state).random() == rng.random()
    with pytest.raises(ValueError, match="invalid RNG state"):
        rng_from_state({"bit_generator": "PCG64", "state": "zz"})


def test_first_generation_is_the_initial_population() -> None:
    batch = propose_generation([], GPT2_LTS, SearchParams(init_population=7), new_rng_state(1))
    assert len(batch.candidates) == 7 and {c.origin for c in batch.candidates} == {"init"}
    assert len({c.arch.archid for c in batch.candidates}) == 7


def test_every_frontier_member_is_a_parent() -> None:
    params = SearchParams(mutations_per_parent=2, num_crossovers=4, num_random_mix=3, max_unseen=1000)
    rng = np.random.default_rng(0)
    history = [Evaluated(a, fake_measure(a)) for a in (GPT2_LTS.sample(rng) for _ in range(60))]
    parents = frontier(history, params)
    parent_ids = {e.arch.archid for e in parents}
    assert len(parents) >= 3

    batch = propose_generation(history, GPT2_LTS, params, new_rng_state(3))
    origins = Counter(c.origin for c in batch.candidates)
    assert origins == {"mutation": 2 * len(parents), "crossover": 4, "random": 3}
    mutated = Counter(c.parents[0] for c in batch.candidates if c.origin == "mutation")
    assert mutated == {pid: 2 for pid in parent_ids}
    for child in (c for c in batch.candidates if c.origin == "crossover"):
        assert len(set(child.parents)) == 2 and set(child.parents) <= parent_ids
    seen = set(_ids(history))
    assert not seen & {c.arch.archid for c in batch.candidates}


def test_frontier_is_the_feasible_non_dominated_set() -> None:
    rng = np.random.default_rng(4)
    history = [Evaluated(a, fake_measure(a)) for a in (GPT2_LTS.sample(rng) for _ in range(80))]
    history.append(Evaluated(GPT2_LTS.sample(rng), None))  # failed measurement: never a parent
    params = SearchParams(objectives=("proxy", "latency"), constraints=Constraints(max_latency=0.005, max_memory=250.0))
    measured = [e for e in history if e.objectives is not None]
    feasible = [e for e in measured if e.objectives["latency"] <= 0.005 and e.objectives["memory"] <= 250.0]
    points = np.array([[e.arch.non_embedding_params, e.objectives["latency"]] for e in feasible])
    expected = [e for e, keep in zip(feasible, pareto_mask(points, ["maximize", "minimize"])) if keep]
    assert frontier(history, params) == expected
    assert frontier([], params) == [] and frontier(history[-1:], params) == []
    with pytest.raises(ValueError, match="memory"):
        frontier([Evaluated(history[0].arch, {"latency": 0.1})], params)


def test_failed_measurements_are_never_proposed_again() -> None:
    failures = set()

    def flaky(arch: Architecture) -> dict[str, float] | None:
        if arch.n_layer % 3 == 0:
            failures.add(arch.archid)
            return None
        return fake_measure(arch)

    result = run_search(flaky, GPT2_LTS, SearchParams(generations=6))
    ids = _ids(result.history)
    assert failures and len(ids) == len(set(ids))
    assert not failures & {e.arch.archid for e in result.frontier}


def test_proxy_constraint_drops_candidates_before_measurement() -> None:
    measured: list[Architecture] = []

    def measure(arch: Architecture) -> dict[str, float]:
        measured.append(arch)
        return fake_measure(arch)

    params = SearchParams(generations=4, constraints=Constraints(min_proxy=5_000_000, max_proxy=15_000_000))
    result = run_search(measure, GPT2_LTS, params)
    assert measured and all(5_000_000 <= a.non_embedding_params <= 15_000_000 for a in measured)
    batch = propose_generation(list(result.history), GPT2_LTS, params, result.rng_state)
    assert batch.dropped_infeasible > 0


def test_max_unseen_caps_each_generation_and_a_small_space_is_exhausted() -> None:
    capped = run_search(fake_measure, GPT2_LTS, SearchParams(generations=5, max_unseen=4, init_population=10))
    per_generation = Counter(e.generation for e in capped.history)
    assert max(per_generation.values()) == 4

    exhausted = run_search(fake_measure, TINY, SearchParams(generations=200, num_random_mix=20))
    ids = _ids(exhausted.history)
    assert len(ids) == len(set(ids)) == TINY.size  # every architecture once, then the search stops


def test_random_baseline_has_the_same_interface_and_budget() -> None:
    params = SearchParams(generations=3)
    evolution = run_search(fake_measure, GPT2_LTS, params)
    baseline = run_search(fake_measure, GPT2_LTS, params, propose=propose_random)
    assert Counter(e.generation for e in baseline.history)[0] == 10
    assert _ids(baseline.history) == _ids(run_search(fake_measure, GPT2_LTS, params, propose=propose_random).history)
    assert {e.generation for e in baseline.history} == {e.generation for e in evolution.history} == {0, 1, 2}


def test_params_round_trip_and_validation() -> None:
    params = SearchParams(objectives=("proxy", "memory"), constraints=Constraints(max_memory=100.0), seed=3)
    assert SearchParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    with pytest.raises(SearchParamsError) as info:
        SearchParams.from_dict(
            {"objectives": ["proxy", "accuracy"], "mutation_prob": 1.5, "init_population": 0, "constraints": {"max_latency": -1}}
        )
    assert set(info.value.errors) == {"constraints.max_latency"}
    with pytest.raises(SearchParamsError) as info:
        SearchParams.from_dict({"objectives": ["proxy", "accuracy"], "mutation_prob": 1.5, "init_population": 0, "seeds": 1})
    assert set(info.value.errors) == {"seeds"}
    with pytest.raises(SearchParamsError) as info:
        SearchParams.from_dict({"objectives": ["proxy", "accuracy"], "mutation_prob": 1.5, "init_population": 0})
    assert set(info.value.errors) == {"objectives", "mutation_prob", "init_population"}
    with pytest.raises(SearchParamsError, match="misses the space"):
        SearchParams(constraints=Constraints(min_proxy=10**9)).check_space(GPT2_LTS)


@pytest.mark.parametrize("name", sorted({**PARAM_LIMITS, "seed": MAX_SEED}))
def test_every_integer_parameter_has_an_upper_bound(name: str) -> None:
    limit = PARAM_LIMITS.get(name, MAX_SEED)
    assert getattr(SearchParams(**{name: limit}), name) == limit
    with pytest.raises(SearchParamsError) as info:
        SearchParams(**{name: limit + 1})
    assert info.value.errors == {name: f"must be at most {limit:,}, got {limit + 1:,}"}
