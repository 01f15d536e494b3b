"""Search spaces over homogeneous GPT-2 decoders: validation, presets, size, proxy range and the random operators.

A space is a JSON document with one entry per hyperparameter of :class:`~searches.core.arch.Architecture`::

    {"n_layer": {"range": [1, 11, 1]},          # Python range semantics: stop is exclusive
     "d_model": "range(128, 1024, 64)",          # the same, as a string
     "d_inner": [128, 256, 512],                 # an explicit list
     "n_head": [2, 4, 8],
     "vocab_size": 50257}                        # a single value; vocab_size, max_sequence_length and
                                                 # dropatt may be left out (Architecture defaults)

An architecture is valid when d_model % n_head == 0; the space is the set of valid combinations, and every random
operator (sample, mutate, crossover) returns a valid one. Randomness comes only from the numpy Generator passed in,
so a search is reproducible from its seed.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arch import _INT_KEYS, ARCH_KEYS, Architecture, ConfigError, non_embedding_params, validate_field

__all__ = [
    "PRESETS",
    "SearchSpace",
    "SearchSpaceError",
    "get_space",
]

# A web user types the space; range(1, 10**9) must be refused, not materialized. The presets use at most 14 choices.
_MAX_CHOICES = 4096
# Mutation redraws when d_model % n_head != 0; with any valid pair in the space an attempt succeeds with probability
# >= (1 - p)^7 (nothing changes) ~ 0.08 at p = 0.3, so 200 attempts fail with probability < 1e-7.
_MUTATION_ATTEMPTS = 200
_RANGE_STRING = re.compile(r"^\s*range\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?(?:,\s*(-?\d+)\s*)?\)\s*$")


class SearchSpaceError(ConfigError):
    """A search-space document is invalid. ``errors`` maps hyperparameter name -> message."""


@dataclass(frozen=True)
class SearchSpace:
    """The choices of each hyperparameter (sorted, without duplicates). Build with from_dict or a preset."""

    n_layer: tuple[int, ...]
    d_model: tuple[int, ...]
    d_inner: tuple[int, ...]
    n_head: tuple[int, ...]
    # Left out of a document: the Architecture defaults (50257, 1024, 0.0).
    vocab_size: tuple[int, ...] = (Architecture.vocab_size,)
    max_sequence_length: tuple[int, ...] = (Architecture.max_sequence_length,)
    dropatt: tuple[float, ...] = (Architecture.dropatt,)
    # The (d_model, n_head) combinations with d_model % n_head == 0: the only coupled hyperparameters.
    _pairs: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for key in ARCH_KEYS:
            values = getattr(self, key)
            message = _check_values(key, values)
            if message is not None:
                errors[key] = message
                continue
            if key == "dropatt":
                values = tuple(float(v) for v in values)
            object.__setattr__(self, key, tuple(sorted(set(values))))
        if errors:
            raise SearchSpaceError(errors)
        # Vectorized: 4096 x 4096 choices are 16.7M checks, ~0.1 s in numpy and ~2 s in a Python loop.
        widths, heads = np.nonzero(np.asarray(self.d_model)[:, None] % np.asarray(self.n_head)[None, :] == 0)
        pairs = tuple((self.d_model[int(i)], self.n_head[int(j)]) for i, j in zip(widths, heads))
        if not pairs:
            raise SearchSpaceError(
                {"n_head": f"no d_model choice {list(self.d_model)} is divisible by any n_head choice {list(self.n_head)}"}
            )
        object.__setattr__(self, "_pairs", pairs)

    # ---- JSON -------------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Parse a space document (see the module docstring); every bad field is reported at once."""
        if not isinstance(data, Mapping):
            raise SearchSpaceError({"space": f"must be a JSON object, got {type(data).__name__}"})
        errors = {str(k): f"unknown hyperparameter; expected one of {', '.join(ARCH_KEYS)}" for k in data if k not in ARCH_KEYS}
        errors.update({k: "this field is required" for k in ("n_layer", "d_model", "d_inner", "n_head") if k not in data})
        choices: dict[str, tuple[Any, ...]] = {}
        for key in ARCH_KEYS:
            if key not in data:
                continue
            try:
                choices[key] = _parse_choices(key, data[key])
            except ValueError as exc:
                errors[key] = str(exc)
                continue
            message = _check_values(key, choices[key])
            if message is not None:
                errors[key] = message
        if errors:
            raise SearchSpaceError(errors)
        return cls(**choices)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SearchSpaceError({"space": f"invalid JSON: {exc}"}) from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The canonical document: arithmetic progressions of 3+ integers as {"range": [start, stop, step]}."""
        out: dict[str, Any] = {}
        for key in ARCH_KEYS:
            values = getattr(self, key)
            steps = {b - a for a, b in zip(values, values[1:])}
            if key != "dropatt" and len(values) >= 3 and len(steps) == 1:
                step = steps.pop()
                out[key] = {"range": [values[0], values[-1] + step, step]}
            else:
                out[key] = list(values)
        return out

    # ---- size and proxy ---------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of valid architectures, without enumerating them."""
        others = (len(getattr(self, k)) for k in ARCH_KEYS if k not in ("d_model", "n_head"))
        return len(self._pairs) * math.prod(others)

    def proxy_range(self) -> tuple[int, int]:
        """(min, max) non-embedding parameters over the space, in O(|d_model| * |n_head|).

        The count is n_layer * (4d^2 + 2d*d_inner + 9d + d_inner) + 2d, increasing in n_layer, d and d_inner and
        independent of n_head, so the extremes are at the extreme choices, with d restricted to valid d_model values.
        """
        widths = sorted({d for d, _ in self._pairs})
        low = Architecture(self.n_layer[0], widths[0], self.d_inner[0], _head_for(widths[0], self._pairs))
        high = Architecture(self.n_layer[-1], widths[-1], self.d_inner[-1], _head_for(widths[-1], self._pairs))
        return non_embedding_params(low), non_embedding_params(high)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, Architecture) and all(getattr(arch, k) in getattr(self, k) for k in ARCH_KEYS)

    def __iter__(self) -> Iterator[Architecture]:
        """Every valid architecture, lazily (use whole on small spaces: gpt2-lts has 5,880).

        One product over the choices, not a product of products: itertools.product turns each of its arguments into a
        tuple first, and a nested product of a large space's choices was materialized before the first item (5 GB in
        16 s for a space within the limits)."""
        rest = [k for k in ARCH_KEYS if k not in ("d_model", "n_head")]
        for (d_model, n_head), *values in itertools.product(self._pairs, *(getattr(self, k) for k in rest)):
            yield Architecture(d_model=d_model, n_head=n_head, **dict(zip(rest, values)))

    def first(self, **fixed: Any) -> Architecture:
        """The first valid architecture with the given hyperparameters fixed (each must be one of its choices),
        built directly whatever the size of the space."""
        missing = {k: v for k, v in fixed.items() if v not in getattr(self, k)}
        if missing:
            raise ValueError(f"not choices of this space: {missing}")
        pairs = [(d, h) for d, h in self._pairs
                 if fixed.get("d_model", d) == d and fixed.get("n_head", h) == h]
        if not pairs:
            raise ValueError(f"no valid (d_model, n_head) pair with {fixed}")
        d_model, n_head = pairs[0]
        rest = {k: fixed.get(k, getattr(self, k)[0]) for k in ARCH_KEYS if k not in ("d_model", "n_head")}
        return Architecture(d_model=d_model, n_head=n_head, **rest)

    # ---- random operators -------------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random valid architecture: (d_model, n_head) uniform over the valid pairs, the rest independent."""
        d_model, n_head = self._pairs[int(rng.integers(len(self._pairs)))]
        values: dict[str, Any] = {"d_model": d_model, "n_head": n_head}
        for key in ("n_layer", "d_inner", "vocab_size", "max_sequence_length", "dropatt"):
            choices = getattr(self, key)
            values[key] = choices[int(rng.integers(len(choices)))]
        return Architecture(**values)

    def mutate(self, arch: Architecture, rng: np.random.Generator, p: float = 0.3) -> Architecture:
        """Resample each hyperparameter with probability p (it may draw its old value), redrawing until valid.

        The result may equal ``arch``; callers dedupe by archid. Values of ``arch`` outside the space are kept when
        not resampled.
        """
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mutation probability must be in [0, 1], got {p}")
        base = {k: getattr(arch, k) for k in ARCH_KEYS}
        for _ in range(_MUTATION_ATTEMPTS):
            values = dict(base)
            # One vector draw per attempt: 7 scalar rng.random() calls cost ~3x more, and a search step mutates
            # every frontier member (~500 of them after 10 gpt2-lts generations).
            for key, resample in zip(ARCH_KEYS, rng.random(len(ARCH_KEYS)) < p):
                if resample:
                    choices = getattr(self, key)
                    values[key] = choices[int(rng.integers(len(choices)))]
            if values["d_model"] % values["n_head"] == 0:
                return Architecture(**values)
        return arch

    def crossover(self, parents: Sequence[Architecture], rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each hyperparameter from a uniformly chosen parent.

        If d_model and n_head come from different parents and do not divide, n_head is taken from d_model's parent
        (a valid pair by construction), so no loop is needed.
        """
        if not parents:
            raise ValueError("crossover needs at least one parent")
        picks = rng.integers(len(parents), size=len(ARCH_KEYS))
        values = {key: getattr(parents[int(i)], key) for key, i in zip(ARCH_KEYS, picks)}
        if values["d_model"] % values["n_head"] != 0:
            values["n_head"] = parents[int(picks[ARCH_KEYS.index("d_model")])].n_head
        return Architecture(**values)


def _head_for(d_model: int, pairs: Sequence[tuple[int, int]]) -> int:
    return next(h for d, h in pairs if d == d_model)


def _check_values(key: str, values: Any) -> str | None:
    if not isinstance(values, (tuple, list)) or not values:
        return "must be a non-empty list of choices"
    if len(values) > _MAX_CHOICES:
        return f"at most {_MAX_CHOICES} choices, got {len(values)}"
    for value in values:
        message = validate_field(key, value)
        if message is not None:
            return f"choice {value!r}: {message}"
    return None


def _parse_choices(key: str, raw: Any) -> tuple[Any, ...]:
    """A list, a scalar, {"range": [start, stop(, step)]} or "range(start, stop(, step))" -> tuple of values."""
    args: list[Any] | None = None
    if isinstance(raw, str):
        match = _RANGE_STRING.match(raw)
        if match is None:
            raise ValueError(f"expected a list, a number, {{\"range\": [start, stop, step]}} or \"range(start, stop, step)\", got {raw!r}")
        args = [int(g) for g in match.groups() if g is not None]
    elif isinstance(raw, Mapping):
        if set(raw) != {"range"} or not isinstance(raw["range"], list) or not 1 <= len(raw["range"]) <= 3:
            raise ValueError('a range is written {"range": [start, stop, step]} (stop exclusive, step optional)')
        args = raw["range"]
    if args is not None:
        if key not in _INT_KEYS:
            raise ValueError("a range is only allowed for integer hyperparameters; list the values")
        if any(isinstance(a, bool) or not isinstance(a, int) for a in args):
            raise ValueError(f"range arguments must be integers, got {args}")
        if len(args) == 3 and args[2] == 0:
            raise ValueError("range step must not be zero")
        span = range(*args)
        if len(span) == 0:
            raise ValueError(f"range({', '.join(map(str, args))}) is empty")
        if len(span) > _MAX_CHOICES:
            raise ValueError(f"at most {_MAX_CHOICES} choices, got {len(span)}")
        return tuple(span)
    if isinstance(raw, list):
        return tuple(raw)
    return (raw,)


PRESETS: dict[str, SearchSpace] = {
    # The space behind microsoft/lts-gpt2-sm: 10 * 14 * 14 * 3 = 5,880 architectures (every d_model is a multiple of
    # 64, so all three head counts divide it).
    "gpt2-lts": SearchSpace.from_dict(
        {
            "n_layer": {"range": [1, 11, 1]},
            "d_model": {"range": [128, 1024, 64]},
            "d_inner": {"range": [128, 1024, 64]},
            "n_head": [2, 4, 8],
            "vocab_size": 50257,
            "max_sequence_length": 1024,
            "dropatt": 0.0,
        }
    ),
    # Demos and tests: 2 * 4 * 3 * 2 = 48 architectures of 8,608 to 265,216 non-embedding parameters, so a whole
    # search measures at most 48 candidates: run_search with default SearchParams and the profiler's default settings
    # (sequence 1024, 1 thread) took 68 s for all 48 on a 2-core EPYC (median 0.89 s per candidate, forkserver
    # start included; 127 s while another job loaded the machine), against 24.3 s per candidate in the reference.
    # Sequence 1024 because the default profiling seq_len (1024) may not exceed max_sequence_length; vocabulary 8192
    # because the lm_head dominates at this width: a forward of the largest at vocab 50257 takes 350 ms, at 8192 70 ms.
    "tiny": SearchSpace.from_dict(
        {
            "n_layer": [1, 2],
            "d_model": [32, 64, 96, 128],
            "d_inner": [64, 128, 256],
            "n_head": [2, 4],
            "vocab_size": 8192,
            "max_sequence_length": 1024,
            "dropatt": 0.0,
        }
    ),
}


def get_space(spec: str | Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """A preset by name, a space document, or a space (returned as is)."""
    if isinstance(spec, SearchSpace):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise SearchSpaceError({"space": f"unknown preset {spec!r}; presets: {', '.join(sorted(PRESETS))}"})
        return PRESETS[spec]
    return SearchSpace.from_dict(spec)
