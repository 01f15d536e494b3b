"""A search job's spec: validation with field-level messages, normalization, and the core objects it maps to.

Pure Python (no Django): the REST serializer, the command line and the orchestrator all go through here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searches.core.arch import ConfigError
from searches.core.evolution import SearchParams, propose_generation, propose_random
from searches.core.pareto import OBJECTIVES, Constraints
from searches.core.policy import (
    BATCH_DEFAULT,
    BATCH_LIMITS,
    EXPLORATION_DEFAULT,
    EXPLORATION_LIMITS,
    MIN_GAIN_DEFAULT,
    MIN_GAIN_LIMITS,
    SCORE_SPACE_LIMIT,
)
from searches.core.profiling import ProfileSettings
from searches.core.space import PRESETS, SearchSpace, get_space

__all__ = ["ALGORITHMS", "BUDGET_LIMITS", "MEASURE_POLICIES", "SpecError", "exploration", "measure_policy",
           "normalize_spec", "profile_settings", "proposer", "scoring_params", "search_params", "space_of"]

# "scored" has no proposer: each round the service predicts every architecture of the space and measures those that
# add most hypervolume (searches.core.policy.score_space); it needs measure "predicted" and a space of at most
# SCORE_SPACE_LIMIT architectures.
ALGORITHMS = {"evolution": propose_generation, "random": propose_random, "scored": None}
_PARAM_KEYS = ("init_population", "mutations_per_parent", "num_crossovers", "num_random_mix", "max_unseen",
               "mutation_prob")
# The policy's parameter, kept in "params" beside the evolution's (which go to SearchParams).
_POLICY_PARAM_KEYS = ("exploration", "batch", "min_gain")
_TOP_KEYS = {"preset", "space", "objectives", "constraints", "device", "profiling", "algorithm", "params", "seed",
             "budget", "measure"}
# "all": measure every candidate. "predicted" (the default with a device): measure those the cost model cannot rule
# out (searches.core.policy), predict the rest.
MEASURE_POLICIES = ("all", "predicted")
_BUDGET_DEFAULTS = {"generations": 10, "max_candidates": None, "max_hardware_seconds": None}
# A search proposes at most generations x max_unseen = 10,000 x 10,000 candidates (evolution.PARAM_LIMITS); a year
# of device time is more than any search here has needed by four orders of magnitude.
BUDGET_LIMITS = {"max_candidates": 10**8, "max_hardware_seconds": 365 * 24 * 3600}


class SpecError(ConfigError):
    """An invalid spec. ``errors`` maps a dotted field path (e.g. "profiling.seq_len") to its message."""


def _nested(prefix: str, exc: ConfigError) -> dict[str, str]:
    return {f"{prefix}.{key}" if key not in (prefix, "config", "settings", "params") else prefix: message
            for key, message in exc.errors.items()}


def normalize_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a submitted spec and return it complete (every default filled in), JSON-safe."""
    if not isinstance(data, Mapping):
        raise SpecError({"spec": f"must be a JSON object, got {type(data).__name__}"})
    errors: dict[str, str] = {k: "unknown field" for k in data if k not in _TOP_KEYS}
    spec: dict[str, Any] = {}

    preset, document = data.get("preset"), data.get("space")
    space: SearchSpace | None = None
    if preset is not None and document is not None:
        errors["space"] = "give either a preset or a space, not both"
    elif preset is None and document is None:
        errors["preset"] = f"choose a preset ({', '.join(sorted(PRESETS))}) or give a space"
    else:
        try:
            if preset is not None:
                if not isinstance(preset, str) or preset not in PRESETS:
                    raise SpecError({"preset": f"unknown preset {preset!r}; presets: {', '.join(sorted(PRESETS))}"})
                space = get_space(preset)
            else:
                space = get_space(document)
        except SpecError as exc:
            errors.update(exc.errors)
        except ConfigError as exc:
            errors.update(_nested("space", exc))
    spec["preset"] = preset
    spec["space"] = space.to_dict() if space else None

    objectives = data.get("objectives", ["proxy", "latency", "memory"])
    if (not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives) or not objectives
            or len(objectives) > 3 or len(set(objectives)) != len(objectives) or not set(objectives) <= set(OBJECTIVES)):
        errors["objectives"] = f"choose 1 to 3 distinct objectives among {', '.join(OBJECTIVES)}"
    spec["objectives"] = objectives

    try:
        spec["constraints"] = Constraints.from_dict(data.get("constraints") or {}).to_dict()
    except ConfigError as exc:
        errors.update(_nested("constraints", exc))

    named = {o for o in objectives if isinstance(o, str)} if isinstance(objectives, list) else set()
    hardware = bool({"latency", "memory"} & named)
    device = data.get("device")
    if device is not None and not isinstance(device, str):
        errors["device"] = "must be a device name"
    elif hardware and not device:
        errors["device"] = "a device is required to measure latency or memory"
    spec["device"] = device or None

    try:
        profile = ProfileSettings.from_dict(data.get("profiling") or {})
        if space is not None:
            profile.check_arch(space.first(max_sequence_length=min(space.max_sequence_length)))
        spec["profiling"] = profile.to_dict()
    except ConfigError as exc:
        errors.update(_nested("profiling", exc))

    # The defaults (bench/search_e2e.py, BENCHMARKS.md): a search on a device measures what the cost model picks,
    # scoring the whole space when it is small enough; anything else measures every candidate of an evolution.
    measure = data.get("measure", "predicted" if hardware else "all")
    small = space is not None and space.size <= SCORE_SPACE_LIMIT
    algorithm = data.get("algorithm", "scored" if measure == "predicted" and small else "evolution")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        errors["algorithm"] = f"must be one of {', '.join(ALGORITHMS)}"
    elif algorithm == "scored" and space is not None and space.size > SCORE_SPACE_LIMIT:
        errors["algorithm"] = (f"\"scored\" predicts the whole space each round: at most {SCORE_SPACE_LIMIT:,} "
                               f"architectures, this space has {space.size:,} (use \"evolution\")")
    spec["algorithm"] = algorithm

    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        errors["params"] = "must be a JSON object"
        params = {}
    errors.update({f"params.{k}": "unknown parameter" for k in params
                   if k not in _PARAM_KEYS and k not in _POLICY_PARAM_KEYS})

    if not isinstance(measure, str) or measure not in MEASURE_POLICIES:
        errors["measure"] = f"must be one of {', '.join(MEASURE_POLICIES)}"
    elif measure == "predicted" and not hardware:
        errors["measure"] = "\"predicted\" needs latency or memory among the objectives (nothing else is measured)"
    if algorithm == "scored" and measure != "predicted" and "measure" not in errors:
        errors["algorithm"] = "\"scored\" measures only what the cost model picks: it needs measure \"predicted\""
    spec["measure"] = measure
    share = params.get("exploration", EXPLORATION_DEFAULT)
    low, high = EXPLORATION_LIMITS
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not low <= share <= high:
        errors["params.exploration"] = f"must be a number in [{low}, {high}], got {share!r}"
    batch = params.get("batch", BATCH_DEFAULT)
    low, high = BATCH_LIMITS
    if isinstance(batch, bool) or not isinstance(batch, int) or not low <= batch <= high:
        errors["params.batch"] = f"must be an integer in [{low}, {high:,}], got {batch!r}"
    min_gain = params.get("min_gain", MIN_GAIN_DEFAULT)
    low, high = MIN_GAIN_LIMITS
    if isinstance(min_gain, bool) or not isinstance(min_gain, (int, float)) or not low <= min_gain <= high:
        errors["params.min_gain"] = f"must be a number in [{low}, {high}], got {min_gain!r}"

    budget = {**_BUDGET_DEFAULTS, **(data.get("budget") or {})} if isinstance(data.get("budget") or {}, Mapping) else None
    if budget is None:
        errors["budget"] = "must be a JSON object"
        budget = dict(_BUDGET_DEFAULTS)
    errors.update({f"budget.{k}": "unknown budget field" for k in budget if k not in _BUDGET_DEFAULTS})
    for key in ("max_candidates", "max_hardware_seconds"):
        value = budget.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            errors[f"budget.{key}"] = "must be a positive number or null"
        elif value is not None and not value <= BUDGET_LIMITS[key]:
            errors[f"budget.{key}"] = f"must be at most {BUDGET_LIMITS[key]:,} or null, got {value!r}"
    spec["budget"] = {k: budget.get(k) for k in _BUDGET_DEFAULTS}

    seed = data.get("seed", 1)
    spec["seed"] = seed
    # Checked even when the objectives or constraints are wrong (with the defaults in their place), so that every
    # field's message comes at once.
    whole = "objectives" not in errors and "constraints" in spec
    try:
        core = SearchParams.from_dict({
            **{k: params[k] for k in _PARAM_KEYS if k in params},
            **({"objectives": objectives, "constraints": spec["constraints"]} if whole else {}),
            "generations": budget["generations"], "seed": seed,
        })
        if whole and space is not None and not any(k.startswith("space") for k in errors):
            core.check_space(space)
        spec["params"] = {**{k: getattr(core, k) for k in _PARAM_KEYS}, "exploration": share, "batch": batch,
                          "min_gain": min_gain}
    except ConfigError as exc:
        for key, message in exc.errors.items():
            target = {"generations": "budget.generations", "seed": "seed"}.get(key)
            errors.setdefault(target or (key if key.startswith("constraints") else f"params.{key}"), message)
    if errors:
        raise SpecError(errors)
    return spec


def space_of(spec: Mapping[str, Any]) -> SearchSpace:
    return SearchSpace.from_dict(spec["space"])


def search_params(spec: Mapping[str, Any]) -> SearchParams:
    evolution = {k: v for k, v in spec["params"].items() if k not in _POLICY_PARAM_KEYS}
    return SearchParams.from_dict({**evolution, "objectives": spec["objectives"],
                                   "constraints": spec["constraints"], "generations": spec["budget"]["generations"],
                                   "seed": spec["seed"]})


def profile_settings(spec: Mapping[str, Any]) -> ProfileSettings:
    return ProfileSettings.from_dict(spec["profiling"])


def proposer(spec: Mapping[str, Any]):
    return ALGORITHMS[spec["algorithm"]]


def measure_policy(spec: Mapping[str, Any]) -> str:
    """"all" or "predicted"; specs stored before the field existed measured everything."""
    return spec.get("measure", "all")


def scoring_params(spec: Mapping[str, Any]) -> tuple[int, float]:
    """The algorithm "scored"'s architectures per round and smallest gain (specs stored before them: the defaults)."""
    params = spec["params"]
    return int(params.get("batch", BATCH_DEFAULT)), float(params.get("min_gain", MIN_GAIN_DEFAULT))


def exploration(spec: Mapping[str, Any]) -> float:
    """The share of ruled-out candidates measured anyway (measure "predicted")."""
    return float(spec["params"].get("exploration", EXPLORATION_DEFAULT))
