"""The LTS core: pure Python (numpy, moocore, torch/transformers only when building models), no Django, no Celery.

Workers, the web layer and notebooks all call these same functions.
"""
from __future__ import annotations

from .arch import (
    ARCH_KEYS,
    Architecture,
    ArchitectureError,
    ConfigError,
    archid,
    build_config,
    build_model,
    non_embedding_params,
    total_params,
)
from .evolution import (
    Batch,
    Candidate,
    Evaluated,
    SearchParams,
    SearchParamsError,
    SearchResult,
    frontier,
    new_rng_state,
    propose_generation,
    propose_random,
    rng_from_state,
    rng_state,
    run_search,
)
from .pareto import (
    OBJECTIVES,
    Constraints,
    ConstraintsError,
    feasible_mask,
    hypervolume,
    pareto_front,
    pareto_mask,
    reference_point,
)
from .space import PRESETS, SearchSpace, SearchSpaceError, get_space

__all__ = [
    "ARCH_KEYS",
    "Architecture",
    "ArchitectureError",
    "Batch",
    "Candidate",
    "ConfigError",
    "Constraints",
    "ConstraintsError",
    "Evaluated",
    "OBJECTIVES",
    "PRESETS",
    "SearchParams",
    "SearchParamsError",
    "SearchResult",
    "SearchSpace",
    "SearchSpaceError",
    "archid",
    "build_config",
    "build_model",
    "feasible_mask",
    "frontier",
    "get_space",
    "hypervolume",
    "new_rng_state",
    "non_embedding_params",
    "pareto_front",
    "pareto_mask",
    "propose_generation",
    "propose_random",
    "reference_point",
    "rng_from_state",
    "rng_state",
    "run_search",
    "total_params",
]
