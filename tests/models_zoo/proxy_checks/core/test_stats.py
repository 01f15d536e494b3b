"""The statistics against scipy on fixed data: point estimates, the batched coefficients of every resample (ties
included), the bootstrap interval against scipy.stats.bootstrap, and the undefined cases."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from models_zoo.proxy_checks.core import (
    bootstrap_interval,
    concordance,
    correlate,
    kendall_batch,
    spearman_batch,
)
from tests.conftest import ROOT

# Ten models of the findings' shape (shared/notes/proxy-check-findings.md): non-embedding parameters against a
# validation perplexity that mostly, not always, falls with size; one pair of equal size.
PROXY = [50_000, 120_000, 260_000, 410_000, 410_000, 900_000, 1_500_000, 2_400_000, 3_800_000, 5_300_000]
PPL = [61.2, 55.0, 49.7, 52.3, 44.1, 47.5, 40.2, 42.8, 38.9, 39.6]


def test_point_estimates_are_scipys():
    result = correlate(PROXY, PPL, resamples=200, seed=0)
    assert result["spearman"].estimate == pytest.approx(stats.spearmanr(PROXY, PPL).statistic, abs=1e-12)
    assert result["kendall"].estimate == pytest.approx(stats.kendalltau(PROXY, PPL).statistic, abs=1e-12)
    assert result["spearman"].p_value == pytest.approx(stats.spearmanr(PROXY, PPL).pvalue, abs=1e-12)
    # By hand: Pearson r of the ranks, the tie at 410,000 sharing rank 4.5.
    assert result["spearman"].estimate == pytest.approx(-0.93617, abs=1e-5)


def test_batched_coefficients_equal_scipy_on_resamples_with_ties():
    x, y = np.asarray(PROXY, float), np.asarray(PPL)
    index = np.random.default_rng(3).integers(0, len(x), size=(300, len(x)))  # resamples repeat models: ties
    rho, tau = spearman_batch(x[index], y[index]), kendall_batch(x[index], y[index])
    for row, r, t in zip(index, rho, tau):
        if np.ptp(x[row]) == 0:
            assert np.isnan(r) and np.isnan(t)
            continue
        assert r == pytest.approx(stats.spearmanr(x[row], y[row]).statistic, abs=1e-12)
        assert t == pytest.approx(stats.kendalltau(x[row], y[row]).statistic, abs=1e-12)


def test_bootstrap_interval_matches_scipys_percentile_bootstrap():
    ours = correlate(PROXY, PPL, resamples=4000, seed=7)["spearman"]
    reference = stats.bootstrap((PROXY, PPL), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
                                vectorized=False, n_resamples=4000, method="percentile",
                                rng=np.random.default_rng(11)).confidence_interval
    # Different draws: the percentiles of two 4,000-resample bootstraps differ by Monte-Carlo error only.
    assert ours.low == pytest.approx(reference.low, abs=0.05)
    assert ours.high == pytest.approx(reference.high, abs=0.05)
    assert ours.low < ours.estimate < ours.high < 0 and ours.verdict == "negative"
    assert ours.resamples == 4000


def test_bootstrap_is_deterministic_for_a_seed():
    a = bootstrap_interval(PROXY, PPL, "kendall", resamples=500, seed=1)
    assert a == bootstrap_interval(PROXY, PPL, "kendall", resamples=500, seed=1)
    assert a != bootstrap_interval(PROXY, PPL, "kendall", resamples=500, seed=2)


def test_an_interval_spanning_zero_is_inconclusive():
    rng = np.random.default_rng(0)
    noise = correlate(PROXY, rng.permutation(PPL), resamples=1000, seed=0)["spearman"]
    assert noise.low < 0 < noise.high and noise.verdict == "inconclusive"


def test_fewer_than_three_models_or_a_constant_is_undefined():
    two = correlate([1, 2], [3, 1])
    assert two["spearman"].estimate is None and two["spearman"].verdict == "undefined"
    constant = correlate([5, 5, 5, 5], [1, 2, 3, 4])
    assert constant["kendall"].estimate is None and constant["kendall"].verdict == "undefined"
    # Three models: defined, and the degenerate resamples (one model drawn three times) are dropped and counted.
    three = correlate([1, 2, 3], [30, 20, 10], resamples=1000, seed=0)["spearman"]
    assert three.estimate == -1.0 and 0 < three.resamples < 1000 and three.high <= 0


def test_concordance_counts_pairs_where_the_larger_model_is_better():
    assert concordance([1, 2, 3], [3, 2, 1]) == 1.0
    assert concordance([1, 2, 3], [1, 2, 3]) == 0.0
    tau = stats.kendalltau(PROXY, PPL).statistic
    share = concordance(PROXY, PPL)
    i, j = np.triu_indices(len(PROXY), 1)
    untied = int((np.asarray(PROXY)[i] != np.asarray(PROXY)[j]).sum())
    assert share == pytest.approx((1 - tau * (len(i) / untied) ** 0.5) / 2, abs=0.02)


def test_the_core_imports_without_django():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = "import sys, models_zoo.proxy_checks.core; assert not {'django', 'celery'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
