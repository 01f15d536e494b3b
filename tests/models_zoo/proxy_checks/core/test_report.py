"""The result and its sentence: coefficients per budget, agreement between budgets, honest wording."""
from __future__ import annotations

import numpy as np

from models_zoo.proxy_checks.core import analyze, interpret


def _points(n, *, noise=0.0, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        proxy = 10_000 * 2 ** i
        rows.append({"archid": f"gpt2_{i}", "proxy": proxy, "total_params": proxy + 500_000, "d_model": 32 * (i + 1),
                     "val_ppl": scale * 100 / (1 + i) + noise * rng.normal()})
    return rows


def test_a_clean_ranking_reads_as_support_with_its_interval():
    result = analyze({200_000: _points(12)}, resamples=500)
    proxy = result["budgets"][0]["predictors"]["proxy"]
    assert proxy["spearman"]["estimate"] == -1.0 and proxy["kendall"]["verdict"] == "negative"
    text = interpret(result, planned=12)
    assert text.startswith("Short-run ranking after 200,000 tokens per model, 12 models:")
    assert "strong support" in text and "rho -1.00 [" in text and "-0.97" in text and "partial" not in text
    # total parameters and d_model grow with the proxy here: the same ranking, and the reading says so
    assert "Ranked by total parameters alone they come out the same" in text and "cannot tell the proxy" in text


def test_noise_is_called_inconclusive_and_failed_models_are_named():
    result = analyze({100_000: _points(5, noise=200, seed=1)}, failed={100_000: 2}, resamples=500)
    text = interpret(result, planned=8)
    assert result["budgets"][0]["predictors"]["proxy"]["spearman"]["verdict"] == "inconclusive"
    assert "Inconclusive: the interval includes zero" in text and "partial: 5 of 8" in text
    assert "2 failed or cancelled and excluded" in text


def test_too_few_models_says_so():
    text = interpret(analyze({100_000: _points(2)}, failed={100_000: 1}), planned=12)
    assert text.startswith("Not enough trained models yet: 2 of 12 finished. 1 failed")


def test_three_perfectly_ranked_models_are_too_small_a_sample_to_judge():
    """The issue's case: interval [-1.00, -1.00] with Kendall p = 0.33 read as "strong support"."""
    result = analyze({100_000: _points(3)}, resamples=300)
    rho = result["budgets"][0]["predictors"]["proxy"]["spearman"]
    assert rho["estimate"] == -1.0 and rho["low"] == rho["high"] == -1.0 and rho["n"] == 3
    assert rho["verdict"] == "too_small"
    text = interpret(result, planned=3)
    assert "3 models are too small a sample to judge (Kendall p = 0.33)" in text
    assert "support" not in text and "rough" not in text
    # from 5 models a perfect ranking is judged (Kendall p = 0.017)
    five = analyze({100_000: _points(5)}, resamples=300)["budgets"][0]["predictors"]["proxy"]
    assert five["kendall"]["p_value"] < 0.05 and five["spearman"]["verdict"] == "negative"


def test_two_budgets_report_their_agreement_and_the_larger_budget_leads():
    result = analyze({100_000: _points(6), 200_000: _points(6, scale=0.8)}, resamples=300)
    assert [b["tokens"] for b in result["budgets"]] == [100_000, 200_000]
    assert result["agreement"]["n"] == 6 and result["agreement"]["spearman"]["estimate"] == 1.0
    text = interpret(result, planned=6)
    assert "after 200,000 tokens per model" in text and "agree with rho +1.00" in text and "largely settled" in text


def test_a_better_baseline_is_named():
    rows = _points(8)
    ppl = [60, 40, 55, 35, 50, 30, 45, 25]  # the proxy (growing along the rows) ranks them loosely ...
    for r, p in zip(rows, ppl):
        r["val_ppl"], r["d_model"] = p, 64 * (1 + sorted(ppl, reverse=True).index(p))  # ... d_model exactly
    result = analyze({50_000: rows}, resamples=300)
    assert result["budgets"][0]["predictors"]["d_model"]["spearman"]["estimate"] == -1.0
    assert "Ranked by d_model alone they came out better (rho -1.00" in interpret(result, planned=8)
