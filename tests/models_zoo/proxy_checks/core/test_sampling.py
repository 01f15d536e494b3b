"""The stratified draw: one architecture per quantile bin of the proxy, distinct archids, deterministic for a seed,
spanning the range better than a uniform draw."""
from __future__ import annotations

import numpy as np
import pytest

from models_zoo.proxy_checks.core import SampleError, pool_from_space, stratified_sample
from searches.core.arch import Architecture
from searches.core.space import PRESETS, SearchSpace


def test_one_draw_per_log_width_bin_in_proxy_order():
    pool = pool_from_space(PRESETS["gpt2-lts"])
    assert len(pool) == 5880  # enumerated whole
    picks = stratified_sample(pool, 12, seed=1)
    proxies = [pool[i].non_embedding_params for i in picks]
    assert proxies == sorted(proxies) and len({pool[i].archid for i in picks}) == 12
    low, high = PRESETS["gpt2-lts"].proxy_range()
    edges = np.exp(np.linspace(np.log(low), np.log(high), 13))
    bins = np.minimum(np.searchsorted(edges, proxies, side="right") - 1, 11)
    assert list(bins) == list(range(12))  # every bin of gpt2-lts has members: one draw each


def test_an_empty_bin_gives_its_draw_to_the_nearest_architecture():
    sizes = [Architecture(1, d, 64, 2) for d in (32, 34, 36, 38, 40, 1024, 1026)]  # a gap in the middle
    picks = stratified_sample(sizes, 4, seed=0)
    assert len(set(picks)) == 4 and picks == sorted(picks, key=lambda i: sizes[i].non_embedding_params)
    # Bins 0 and 3 draw from the two clusters; the empty bins 1 and 2 take the nearest untaken member of each.
    assert sum(i < 5 for i in picks) == 2 and sum(i >= 5 for i in picks) == 2


def test_deterministic_for_a_seed_and_different_for_another():
    pool = pool_from_space(PRESETS["tiny"])
    assert stratified_sample(pool, 6, seed=3) == stratified_sample(pool, 6, seed=3)
    assert stratified_sample(pool, 6, seed=3) != stratified_sample(pool, 6, seed=4)


def test_spans_the_range_better_than_uniform_draws():
    pool = pool_from_space(PRESETS["gpt2-lts"])
    proxies = np.log10([a.non_embedding_params for a in pool])
    strat = [np.ptp(proxies[stratified_sample(pool, 8, seed=s)]) for s in range(20)]
    rng = np.random.default_rng(0)
    uniform = [np.ptp(proxies[rng.choice(len(pool), 8, replace=False)]) for _ in range(20)]
    assert np.median(strat) > np.median(uniform) + 0.5 and min(strat) > 2.0


def test_duplicates_count_once_and_too_small_a_pool_is_a_field_error():
    a = Architecture(1, 64, 128, 2)
    b = Architecture(2, 64, 128, 2)
    assert sorted(stratified_sample([a, a, b], 2)) == [0, 2]
    with pytest.raises(SampleError) as err:
        stratified_sample([a, a, b], 3)
    assert "only 2 distinct" in err.value.errors["sample_size"]


def test_a_large_space_is_represented_by_random_draws():
    space = SearchSpace.from_dict({"n_layer": {"range": [1, 40]}, "d_model": {"range": [64, 4096, 64]},
                                   "d_inner": {"range": [64, 4096, 64]}, "n_head": [1, 2]})
    assert space.size > 20_000
    pool = pool_from_space(space, seed=0, max_pool=2000)
    assert 1900 < len(pool) <= 2000 and all(arch in space for arch in pool)
    assert pool == pool_from_space(space, seed=0, max_pool=2000)
