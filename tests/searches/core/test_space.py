"""Search spaces: parsing and validation, size and proxy range against enumeration, the random operators."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from searches.core.arch import ARCH_KEYS, Architecture
from searches.core.space import PRESETS, SearchSpace, SearchSpaceError, get_space

GPT2_LTS = PRESETS["gpt2-lts"]
TINY = PRESETS["tiny"]
# Coupled choices where some (d_model, n_head) pairs are invalid: 96 % 64, 100 % 8, 100 % 64 != 0.
AWKWARD = SearchSpace.from_dict({"n_layer": [1, 2], "d_model": [96, 100, 128], "d_inner": [64], "n_head": [3, 8, 64]})

@st.composite
def small_spaces(draw: st.DrawFn) -> SearchSpace:
    d_model = draw(st.lists(st.integers(8, 200), min_size=1, max_size=5))
    n_head = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
    assume(any(d % h == 0 for d in d_model for h in n_head))
    return SearchSpace.from_dict(
        {
            "n_layer": draw(st.lists(st.integers(1, 12), min_size=1, max_size=3)),
            "d_model": d_model,
            "d_inner": draw(st.lists(st.integers(1, 300), min_size=1, max_size=3)),
            "n_head": n_head,
        }
    )


def test_gpt2_lts_has_the_5880_architectures_of_the_issue() -> None:
    archs = list(GPT2_LTS)
    assert GPT2_LTS.size == len(archs) == 5880 == 10 * 14 * 14 * 3
    assert len({a.archid for a in archs}) == 5880
    assert GPT2_LTS.d_model == tuple(range(128, 1024, 64)) and GPT2_LTS.n_head == (2, 4, 8)
    assert (GPT2_LTS.vocab_size, GPT2_LTS.max_sequence_length, GPT2_LTS.dropatt) == ((50257,), (1024,), (0.0,))
    proxies = [a.non_embedding_params for a in archs]
    assert GPT2_LTS.proxy_range() == (min(proxies), max(proxies)) == (99_840, 55_393_920)


def test_tiny_is_small_and_profilable_at_default_settings() -> None:
    assert TINY.size == len(list(TINY)) == 48
    assert TINY.proxy_range() == (8_608, 265_216) and TINY.vocab_size == (8192,)
    # The profiler's default seq_len is 1024 and may not exceed an architecture's max_sequence_length.
    assert TINY.max_sequence_length == (1024,)


@settings(max_examples=60, deadline=None)
@given(small_spaces())
def test_size_and_proxy_range_match_enumeration(space: SearchSpace) -> None:
    archs = list(space)
    assert space.size == len(archs) == len({a.archid for a in archs})
    assert all(a in space and a.d_model % a.n_head == 0 for a in archs)
    proxies = [a.non_embedding_params for a in archs]
    assert space.proxy_range() == (min(proxies), max(proxies))


def test_size_of_a_huge_space_needs_no_enumeration() -> None:
    space = SearchSpace.from_dict({**{k: {"range": [1, 4001]} for k in ("d_model", "d_inner", "vocab_size",
                                                                         "max_sequence_length")},
                                   "n_layer": {"range": [1, 257]}, "n_head": {"range": [1, 257]}})  # ARCH_LIMITS
    assert space.size > 10**16
    low, high = space.proxy_range()
    assert low == Architecture(1, 1, 1, 1).non_embedding_params and high == Architecture(256, 4000, 4000, 1).non_embedding_params


# Every hyperparameter at its widest within the limits: 10^21 architectures.
_LARGEST = {"n_layer": {"range": [1, 257, 1]}, "d_model": {"range": [8, 32776, 8]},
            "d_inner": {"range": [32, 131104, 32]}, "n_head": {"range": [1, 257, 1]},
            "vocab_size": {"range": [64, 262208, 64]}, "max_sequence_length": {"range": [32, 131104, 32]}}


def test_iterating_a_huge_space_is_lazy() -> None:
    # A product of products was materialized before the first item (5 GB in 16 s for this space).
    space = SearchSpace.from_dict(_LARGEST)
    first = next(iter(space))
    assert (first.n_layer, first.d_model, first.n_head, first.max_sequence_length) == (1, 8, 1, 32)
    assert first in space


def test_first_builds_an_architecture_with_fixed_choices_directly() -> None:
    space = SearchSpace.from_dict(_LARGEST)
    arch = space.first(max_sequence_length=131072, d_model=32768)
    assert (arch.max_sequence_length, arch.d_model, arch.n_layer) == (131072, 32768, 1)
    assert arch.d_model % arch.n_head == 0 and arch in space
    tiny = get_space("tiny")
    assert tiny.first() == next(iter(tiny))
    with pytest.raises(ValueError, match="not choices"):
        tiny.first(n_layer=99)


def test_range_forms_and_scalars_are_equivalent() -> None:
    base = {"n_layer": [1, 2, 3], "d_model": list(range(128, 1024, 64)), "d_inner": [256], "n_head": [2, 4, 8]}
    forms = [
        base,
        {**base, "n_layer": {"range": [1, 4]}, "d_model": {"range": [128, 1024, 64]}, "d_inner": 256},
        {**base, "n_layer": "range(1, 4)", "d_model": "range(128, 1024, 64)", "d_inner": "range(256,257)"},
        {**base, "n_layer": [3, 1, 2, 2], "vocab_size": 50257, "max_sequence_length": [1024], "dropatt": [0]},
    ]
    spaces = [SearchSpace.from_dict(f) for f in forms]
    assert all(s == spaces[0] for s in spaces)


@pytest.mark.parametrize("space", [GPT2_LTS, TINY, AWKWARD], ids=["gpt2-lts", "tiny", "awkward"])
def test_json_round_trip(space: SearchSpace) -> None:
    document = json.dumps(space.to_dict())
    assert SearchSpace.from_json(document) == space
    assert set(json.loads(document)) == set(ARCH_KEYS)
    if space is GPT2_LTS:
        assert json.loads(document)["d_model"] == {"range": [128, 1024, 64]}


@pytest.mark.parametrize(
    "document, field, fragment",
    [
        ({"n_layer": [1], "d_model": [64], "d_inner": [64]}, "n_head", "required"),
        ({"n_layer": [1], "d_model": [64], "d_inner": [64], "n_head": [2], "heads": [2]}, "heads", "unknown"),
        ({"n_layer": [], "d_model": [64], "d_inner": [64], "n_head": [2]}, "n_layer", "non-empty"),
        ({"n_layer": [0, 1], "d_model": [64], "d_inner": [64], "n_head": [2]}, "n_layer", "at least 1"),
        ({"n_layer": [1], "d_model": [64.5], "d_inner": [64], "n_head": [2]}, "d_model", "integer"),
        ({"n_layer": [1], "d_model": "range(64)", "d_inner": [64], "n_head": [2]}, "d_model", "at least 1"),
        ({"n_layer": [1], "d_model": "range(64, 64)", "d_inner": [64], "n_head": [2]}, "d_model", "empty"),
        ({"n_layer": [1], "d_model": "range(64, 128, 0)", "d_inner": [64], "n_head": [2]}, "d_model", "zero"),
        ({"n_layer": [1], "d_model": "64..128", "d_inner": [64], "n_head": [2]}, "d_model", "range(start, stop, step)"),
        ({"n_layer": [1], "d_model": {"range": [1, 10**9]}, "d_inner": [64], "n_head": [2]}, "d_model", "at most 4096"),
        ({"n_layer": [1], "d_model": {"start": 1}, "d_inner": [64], "n_head": [2]}, "d_model", '{"range"'),
        ({"n_layer": [1], "d_model": [64], "d_inner": [64], "n_head": [2], "dropatt": "range(0, 1)"}, "dropatt", "integer hyperparameters"),
        ({"n_layer": [1], "d_model": [64], "d_inner": [64], "n_head": [2], "dropatt": [1.5]}, "dropatt", "[0, 1)"),
        ({"n_layer": [1], "d_model": [96, 100], "d_inner": [64], "n_head": [64]}, "n_head", "divisible"),
        ([1, 2, 3], "space", "JSON object"),
    ],
)
def test_invalid_spaces_name_the_field(document: object, field: str, fragment: str) -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(document)  # type: ignore[arg-type]  # bad input on purpose
    assert fragment in info.value.errors[field], info.value.errors


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict({"n_layer": [0], "d_model": "nope", "d_inner": [], "extra": 1})
    assert set(info.value.errors) == {"n_layer", "d_model", "d_inner", "n_head", "extra"}


def test_invalid_json_and_unknown_preset() -> None:
    with pytest.raises(SearchSpaceError, match="invalid JSON"):
        SearchSpace.from_json("{'n_layer': [1]}")
    with pytest.raises(SearchSpaceError, match="gpt2-lts, tiny"):
        get_space("gpt2-huge")
    assert get_space("tiny") is TINY and get_space(TINY.to_dict()) == TINY


def test_sampling_is_uniform_over_valid_architectures() -> None:
    rng = np.random.default_rng(0)
    counts = Counter(TINY.sample(rng).archid for _ in range(9600))
    assert len(counts) == TINY.size
    assert chisquare(list(counts.values())).pvalue > 1e-3
    # Uniform over valid combinations, not over each choice list: 96 % 3 == 0 only.
    awkward = Counter(AWKWARD.sample(rng) for _ in range(3000))
    assert set(awkward) == set(AWKWARD) and all(a.d_model % a.n_head == 0 for a in awkward)
    assert chisquare(list(awkward.values())).pvalue > 1e-3


def test_sampling_is_reproducible_from_the_seed() -> None:
    first = [GPT2_LTS.sample(np.random.default_rng(7)) for _ in range(3)]
    again = [GPT2_LTS.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first == again
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(8)
    assert [GPT2_LTS.sample(rng_a) for _ in range(5)] != [GPT2_LTS.sample(rng_b) for _ in range(5)]


def test_mutation_resamples_each_hyperparameter_with_probability_p() -> None:
    rng = np.random.default_rng(1)
    parent = Architecture(5, 512, 512, 4)
    assert all(GPT2_LTS.mutate(parent, rng, p=0.0) == parent for _ in range(20))
    children = [GPT2_LTS.mutate(parent, rng, p=0.3) for _ in range(4000)]
    assert all(c in GPT2_LTS for c in children)
    # A resampled value differs from the old one with probability 1 - 1/k (k choices).
    for key, k in (("n_layer", 10), ("d_model", 14), ("n_head", 3)):
        changed = np.mean([getattr(c, key) != getattr(parent, key) for c in children])
        assert changed == pytest.approx(0.3 * (1 - 1 / k), abs=0.03), key
    assert all(c.vocab_size == 50257 for c in children)


def test_mutation_and_crossover_stay_valid_when_pairs_are_coupled() -> None:
    rng = np.random.default_rng(2)
    parents = list(AWKWARD)
    for _ in range(500):
        child = AWKWARD.mutate(parents[int(rng.integers(len(parents)))], rng, p=1.0)
        assert child in AWKWARD and child.d_model % child.n_head == 0
    a, b = Architecture(1, 96, 64, 3), Architecture(2, 128, 64, 64)
    for _ in range(200):
        child = AWKWARD.crossover([a, b], rng)
        assert child.d_model % child.n_head == 0
        assert all(getattr(child, k) in (getattr(a, k), getattr(b, k)) for k in ARCH_KEYS)


def test_uniform_crossover_mixes_both_parents() -> None:
    rng = np.random.default_rng(3)
    a, b = Architecture(1, 128, 128, 2), Architecture(10, 960, 960, 8)
    children = [GPT2_LTS.crossover([a, b], rng) for _ in range(1000)]
    for key in ("n_layer", "d_model", "d_inner", "n_head"):
        from_a = np.mean([getattr(c, key) == getattr(a, key) for c in children])
        assert from_a == pytest.approx(0.5, abs=0.06), key
    assert GPT2_LTS.crossover([a], rng) == a
    with pytest.raises(ValueError):
        GPT2_LTS.crossover([], rng)


def test_choices_beyond_the_published_sizes_are_refused_per_field() -> None:
    """The issue: d_model 3e9 and n_layer 1e12 were accepted."""
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict({"n_layer": [2, 10**12], "d_model": 3_000_000_000, "d_inner": [64], "n_head": [2]})
    assert set(info.value.errors) == {"n_layer", "d_model"}
    assert "at most 256" in info.value.errors["n_layer"] and "at most 32,768" in info.value.errors["d_model"]
    assert SearchSpace.from_dict({"n_layer": [256], "d_model": [32_768], "d_inner": [64], "n_head": [2]}).size == 1
