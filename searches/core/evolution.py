"""Evolutionary Pareto search (the semantics of archai's EvolutionParetoSearch) as a pure step function.

``propose_generation(history, space, params, rng_state)`` returns the next batch and the new RNG state; it keeps no
state of its own, so a worker can stop after any generation, store the history and the JSON-safe RNG state, and a
later call continues the very same random stream. One generation:

- first call (empty history): ``init_population`` uniform random architectures;
- later calls: every member of the feasible Pareto frontier of the measured history is a parent;
  ``mutations_per_parent`` mutations of each, ``num_crossovers`` uniform crossovers of two distinct parents,
  ``num_random_mix`` random samples (against local minima); shuffled and cut to ``max_unseen``.

Every candidate is new: deduplicated by archid against the whole history (failed measurements included) and
within the batch; candidates outside the proxy constraint are dropped before any measurement. Unlike archai,
an infeasible or already-seen mutation still counts as a try, so a parent whose neighbourhood is exhausted cannot
loop forever.

The step is deterministic given its inputs, including the order of the history (frontier members become parents
in history order): store and reload the history in proposal order (generation, then position in the batch).
Random streams are numpy's PCG64; numpy does not promise identical Generator streams across its versions, so resume
a search with the numpy it started with (bit-for-bit reproducibility within one version is tested).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from .arch import Architecture, ConfigError
from .pareto import OBJECTIVES, Constraints, ConstraintsError, pareto_mask
from .space import SearchSpace

__all__ = [
    "Batch",
    "Candidate",
    "MAX_SEED",
    "PARAM_LIMITS",
    "Evaluated",
    "ProposeFn",
    "SearchParams",
    "SearchParamsError",
    "SearchResult",
    "frontier",
    "new_rng_state",
    "propose_generation",
    "propose_random",
    "rng_from_state",
    "rng_state",
    "run_search",
]

# Tries per wanted candidate before giving up (archai uses 20 per parent for mutations): with p = 0.3 over the
# 4 free hyperparameters of gpt2-lts a mutation leaves the parent unchanged with probability 0.7^4 = 0.24, so 20
# tries miss a new neighbour only when the neighbourhood is (nearly) all seen or infeasible.
_PATIENCE = 20
# Upper bounds of the parameters. A generation proposes at most max_unseen architectures, so 10,000 is already a
# generation that takes a device days to measure (~1 s a candidate at the default profiling settings); the defaults
# are 10 to 100. generations is stored in a PositiveIntegerField, and 10,000 generations of 10,000 is 1e8 candidates.
PARAM_LIMITS: dict[str, int] = {
    "init_population": 10_000,
    "mutations_per_parent": 100,
    "num_crossovers": 10_000,
    "num_random_mix": 10_000,
    "max_unseen": 10_000,
    "generations": 10_000,
}
# numpy seeds any non-negative integer, but the legacy RandomState and most tools only 32 bits: a search's seed is
# one value anyone can pass on.
MAX_SEED = 2**32 - 1

Origin = Literal["init", "mutation", "crossover", "random"]


class SearchParamsError(ConfigError):
    """Search parameters are invalid. ``errors`` maps field name -> message."""


@dataclass(frozen=True)
class SearchParams:
    """Algorithm parameters (archai's defaults), the objectives to optimize and the constraints."""

    objectives: tuple[str, ...] = ("proxy", "latency", "memory")
    constraints: Constraints = field(default_factory=Constraints)
    init_population: int = 10
    mutations_per_parent: int = 1
    num_crossovers: int = 5
    num_random_mix: int = 5
    max_unseen: int = 100
    mutation_prob: float = 0.3
    generations: int = 10
    seed: int = 1

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        objectives = self.objectives
        if isinstance(objectives, str) or not isinstance(objectives, (list, tuple)):
            errors["objectives"] = f"must be a list of objective names, got {objectives!r}"
        elif not 1 <= len(objectives) <= 3 or len(set(objectives)) != len(objectives) or not set(objectives) <= set(OBJECTIVES):
            errors["objectives"] = f"choose 1 to 3 distinct objectives among {', '.join(OBJECTIVES)}, got {list(objectives)}"
        else:
            object.__setattr__(self, "objectives", tuple(objectives))
        if not isinstance(self.constraints, Constraints):
            errors["constraints"] = f"must be a Constraints, got {type(self.constraints).__name__}"
        minimum = {"init_population": 1, "mutations_per_parent": 0, "num_crossovers": 0, "num_random_mix": 0,
                   "max_unseen": 1, "generations": 1, "seed": 0}
        for name, low in minimum.items():
            value = getattr(self, name)
            high = PARAM_LIMITS.get(name, MAX_SEED)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                errors[name] = f"must be an integer >= {low}, got {value!r}"
            elif value > high:
                errors[name] = f"must be at most {high:,}, got {value:,}"
        p = self.mutation_prob
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            errors["mutation_prob"] = f"must be a number in [0, 1], got {p!r}"
        if errors:
            raise SearchParamsError(errors)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchParams:
        if not isinstance(data, Mapping):
            raise SearchParamsError({"params": f"must be a JSON object, got {type(data).__name__}"})
        unknown = {k: "unknown parameter" for k in data if k not in cls.__dataclass_fields__}
        if unknown:
            raise SearchParamsError(unknown)
        values = dict(data)
        if "constraints" in values:
            try:
                values["constraints"] = Constraints.from_dict(values["constraints"])
            except ConstraintsError as exc:
                raise SearchParamsError({f"constraints.{k}": v for k, v in exc.errors.items()}) from None
        if isinstance(values.get("objectives"), list):
            values["objectives"] = tuple(values["objectives"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["objectives"] = list(self.objectives)
        return out

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a proxy constraint that no architecture of the space can meet (a search would propose nothing)."""
        low, high = space.proxy_range()
        c = self.constraints
        if (c.min_proxy is not None and c.min_proxy > high) or (c.max_proxy is not None and c.max_proxy < low):
            raise SearchParamsError(
                {"constraints": f"the proxy range [{c.min_proxy}, {c.max_proxy}] misses the space's [{low:,}, {high:,}]"}
            )


@dataclass(frozen=True)
class Evaluated:
    """One architecture of the history. ``objectives`` None: proposed but not measured (failed): never proposed
    again, never a parent. The "proxy" objective is computed from the architecture when absent."""

    arch: Architecture
    objectives: Mapping[str, float] | None = None
    generation: int = 0


@dataclass(frozen=True)
class Candidate:
    """A proposed architecture, how it was made, and the archids of its parents."""

    arch: Architecture
    origin: Origin
    parents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"archid": self.arch.archid, "config": self.arch.to_dict(), "origin": self.origin, "parents": list(self.parents)}


@dataclass(frozen=True)
class Batch:
    """The next generation, the RNG state to store for the following call, and how many generated architectures
    the proxy constraint dropped (never measured)."""

    candidates: tuple[Candidate, ...]
    rng_state: dict[str, Any]
    dropped_infeasible: int = 0

    @property
    def archs(self) -> list[Architecture]:
        return [c.arch for c in self.candidates]


@dataclass(frozen=True)
class SearchResult:
    history: tuple[Evaluated, ...]
    rng_state: dict[str, Any]
    frontier: tuple[Evaluated, ...]


ProposeFn = Callable[[Sequence[Evaluated], SearchSpace, SearchParams, Mapping[str, Any]], Batch]


# ---- RNG state ----------------------------------------------------------------------------------------------------

def new_rng_state(seed: int) -> dict[str, Any]:
    """The JSON-safe state of a fresh PCG64 generator seeded with ``seed``."""
    return rng_state(np.random.Generator(np.random.PCG64(seed)))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state with its two 128-bit integers as hex strings: JSON numbers above 2^53 lose digits in
    JavaScript and in some JSON columns."""
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise ValueError(f"only PCG64 generators are supported, got {state.get('bit_generator')}")
    return {
        "bit_generator": "PCG64",
        "state": hex(state["state"]["state"]),
        "inc": hex(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A generator resuming exactly where the one that produced ``state`` (from rng_state) stopped."""
    try:
        if state["bit_generator"] != "PCG64":
            raise ValueError(f"only PCG64 is supported, got {state['bit_generator']!r}")
        bit_generator = np.random.PCG64()
        bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(state["state"], 16), "inc": int(state["inc"], 16)},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid RNG state {dict(state)!r}: {exc}") from None
    return np.random.Generator(bit_generator)


# ---- the search step ----------------------------------------------------------------------------------------------

def frontier(history: Sequence[Evaluated], params: SearchParams) -> list[Evaluated]:
    """The measured, constraint-feasible entries that no other such entry dominates, in history order."""
    measured = [e for e in history if e.objectives is not None]
    if not measured:
        return []
    names = dict.fromkeys((*params.objectives, *params.constraints.bounds()))
    columns = {n: np.asarray([_objective(e, n) for e in measured], dtype=float) for n in names}
    feasible = np.flatnonzero(params.constraints.mask(columns))
    points = np.column_stack([columns[n][feasible] for n in params.objectives])
    mask = pareto_mask(points, [OBJECTIVES[n] for n in params.objectives])
    return [measured[i] for i in feasible[mask]]


def _objective(entry: Evaluated, name: str) -> float:
    value = (entry.objectives or {}).get(name)
    if value is None and name == "proxy":
        return entry.arch.non_embedding_params
    if value is None:
        raise ValueError(f"{entry.arch.archid} has no value for {name!r}: {dict(entry.objectives or {})}")
    return float(value)


class _BatchBuilder:
    """Collects new, proxy-feasible candidates; remembers every archid seen so far."""

    def __init__(self, history: Sequence[Evaluated], constraints: Constraints):
        self.seen = {e.arch.archid for e in history}
        self.constraints = constraints
        self.candidates: list[Candidate] = []
        self.dropped = 0

    def offer(self, arch: Architecture, origin: Origin, parents: tuple[str, ...] = ()) -> bool:
        archid = arch.archid
        if archid in self.seen:
            return False
        if not self.constraints.proxy_ok(arch.non_embedding_params):
            self.dropped += 1
            return False
        self.seen.add(archid)
        self.candidates.append(Candidate(arch, origin, parents))
        return True

    def add_random(self, space: SearchSpace, rng: np.random.Generator, count: int, origin: Origin) -> None:
        added = 0
        for _ in range(_PATIENCE * count):
            if added == count:
                break
            added += self.offer(space.sample(rng), origin)

    def batch(self, rng: np.random.Generator, max_unseen: int) -> Batch:
        order = rng.permutation(len(self.candidates))
        chosen = tuple(self.candidates[int(i)] for i in order[:max_unseen])
        return Batch(chosen, rng_state(rng), self.dropped)


def propose_generation(
    history: Sequence[Evaluated], space: SearchSpace, params: SearchParams, rng_state: Mapping[str, Any]
) -> Batch:
    """The next generation of the evolutionary Pareto search (see the module docstring)."""
    rng = rng_from_state(rng_state)
    builder = _BatchBuilder(history, params.constraints)
    if not history:
        builder.add_random(space, rng, params.init_population, "init")
        return builder.batch(rng, params.max_unseen)
    parents = [e.arch for e in frontier(history, params)]
    for parent in parents:
        added = 0
        for _ in range(_PATIENCE * params.mutations_per_parent):
            if added == params.mutations_per_parent:
                break
            added += builder.offer(space.mutate(parent, rng, params.mutation_prob), "mutation", (parent.archid,))
    if len(parents) >= 2:
        for _ in range(params.num_crossovers):
            i, j = rng.choice(len(parents), size=2, replace=False)
            pair = (parents[int(i)], parents[int(j)])
            for _ in range(_PATIENCE):
                if builder.offer(space.crossover(pair, rng), "crossover", (pair[0].archid, pair[1].archid)):
                    break
    builder.add_random(space, rng, params.num_random_mix, "random")
    return builder.batch(rng, params.max_unseen)


def propose_random(
    history: Sequence[Evaluated], space: SearchSpace, params: SearchParams, rng_state: Mapping[str, Any]
) -> Batch:
    """Random-search baseline with propose_generation's interface and nominal budget: ``init_population`` first,
    then as many samples as the evolution would try from this history (mutations of each frontier member +
    crossovers + random mix), up to ``max_unseen``."""
    rng = rng_from_state(rng_state)
    builder = _BatchBuilder(history, params.constraints)
    if not history:
        count = params.init_population
    else:
        parents = len(frontier(history, params))
        count = params.mutations_per_parent * parents + (params.num_crossovers if parents >= 2 else 0) + params.num_random_mix
    builder.add_random(space, rng, min(count, params.max_unseen), "init" if not history else "random")
    return builder.batch(rng, params.max_unseen)


def run_search(
    evaluate_fn: Callable[[Architecture], Mapping[str, float] | None],
    space: SearchSpace,
    params: SearchParams | None = None,
    generations: int | None = None,
    seed: int | None = None,
    propose: ProposeFn = propose_generation,
) -> SearchResult:
    """Run a whole search in-process (notebooks, tests, benchmarks). ``evaluate_fn`` returns the objective values of
    one architecture, or None when it cannot be measured. Stops early when a generation proposes nothing new."""
    params = params or SearchParams()
    params.check_space(space)
    state = new_rng_state(params.seed if seed is None else seed)
    history: list[Evaluated] = []
    for generation in range(params.generations if generations is None else generations):
        batch = propose(history, space, params, state)
        state = batch.rng_state
        if not batch.candidates:
            break
        history.extend(Evaluated(c.arch, evaluate_fn(c.arch), generation) for c in batch.candidates)
    return SearchResult(tuple(history), state, tuple(frontier(history, params)))
