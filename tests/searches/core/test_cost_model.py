"""Cost models: fit, intervals and their coverage, refit, not enough data, persistence, the space-filling design.

The measurements are synthetic: a ground truth built from costs the model does not see as such (a per-layer
overhead, FLOP rates per kind of kernel, memory of weights, logits and one attention matrix), with log-normal noise.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from searches.core.arch import Architecture
from searches.core.cost_model import (
    MIN_OBSERVATIONS,
    CostModel,
    NotEnoughData,
    Observation,
    features,
    fit_cost_model,
    heldout_report,
    space_filling_design,
)
from searches.core.profiling import ProfileSettings
from searches.core.space import get_space

SETTINGS = ProfileSettings()
SPACE = get_space("gpt2-lts")


def _truth(arch: Architecture, rng: np.random.Generator, noise: float = 0.02,
           settings: ProfileSettings = SETTINGS) -> Observation:
    f = features(arch, settings)
    latency = (0.004 + 2e-3 * f["layers"] + f["attn_proj_flops"] / 60e9 + f["attn_score_flops"] / 20e9
               + f["softmax_elems"] / 2e9 + f["mlp_flops"] / 70e9 + f["head_flops"] / 80e9)
    memory = 12 + f["weight_bytes"] / 2**20 + 1.5 * f["logits_bytes"] / 2**20 + f["score_bytes"] / 2**20
    return Observation(arch, latency * rng.lognormal(0, noise), memory * rng.lognormal(0, noise / 4))


@pytest.fixture(scope="module")
def measured() -> list[Observation]:
    rng = np.random.default_rng(0)
    archs = list(SPACE)
    order = rng.permutation(len(archs))
    return [_truth(archs[i], rng) for i in order[:700]]


def test_no_model_below_the_minimum(measured):
    with pytest.raises(NotEnoughData) as info:
        fit_cost_model(SETTINGS, measured[: MIN_OBSERVATIONS - 1])
    assert (info.value.have, info.value.need) == (MIN_OBSERVATIONS - 1, MIN_OBSERVATIONS)
    assert "at least 16" in str(info.value)
    # Duplicates of one architecture count once: the cache holds one measurement per archid and key.
    with pytest.raises(NotEnoughData):
        fit_cost_model(SETTINGS, [measured[0]] * 40)
    assert fit_cost_model(SETTINGS, measured[:MIN_OBSERVATIONS]).measurements == MIN_OBSERVATIONS


@pytest.mark.parametrize("n", [25, 50, 100])
def test_held_out_error_and_coverage(measured, n):
    model = fit_cost_model(SETTINGS, measured[:n])
    report = heldout_report(model, measured[200:])
    assert report["latency"]["n"] == 500
    assert report["latency"]["mape"] < 0.05 and report["latency"]["spearman"] > 0.99
    assert report["memory"]["mape"] < 0.02 and report["memory"]["spearman"] > 0.99
    # 90% intervals from n held-out residuals: their coverage of new measurements scatters around 0.9 with a
    # spread of about 1/sqrt(n) in the quantile; 0.75 and 0.99 are far outside what a correct interval gives.
    for target in ("latency", "memory"):
        assert 0.75 <= report[target]["coverage"] <= 0.99, (target, report[target])
    # The model's own figures come from held-out folds, not from the points it was fit on.
    assert 0 < model.latency.heldout_mape < 0.05 and 0 < model.latency.heldout_coverage <= 1


def test_intervals_bracket_the_prediction_and_widen_with_noise(measured):
    rng = np.random.default_rng(1)
    quiet = fit_cost_model(SETTINGS, measured[:60])
    noisy = fit_cost_model(SETTINGS, [_truth(o.arch, rng, noise=0.10) for o in measured[:60]])
    archs = [o.arch for o in measured[300:310]]
    for model in (quiet, noisy):
        for value, low, high in model.predict(archs).values():
            assert np.all(low < value) and np.all(value < high)
    assert noisy.latency.log_halfwidth > 2 * quiet.latency.log_halfwidth


def test_fit_is_deterministic_and_order_free(measured):
    rows = measured[:40]
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    a = fit_cost_model(SETTINGS, rows).to_dict()
    b = fit_cost_model(SETTINGS, shuffled).to_dict()
    a.pop("fitted_at"), b.pop("fitted_at")
    assert a == b


def _timed(rows: list[Observation], slower_after: int = 10**9, factor: float = 1.0) -> list[Observation]:
    """``rows`` measured one after the other (measured_at 0, 1, ...); from ``slower_after`` on, latency ``factor``
    times what it was: a host that runs slower from then on, or a search that moved where the costs differ."""
    return [Observation(o.arch, o.latency_s * (factor if i >= slower_after else 1.0), o.memory_mb, float(i))
            for i, o in enumerate(rows)]


def test_later_measurements_check_the_intervals_as_a_search_meets_them(measured):
    # Without measured_at there is no check, and the interval is the held-out folds' alone.
    plain = fit_cost_model(SETTINGS, measured[:120])
    assert (plain.latency.later_n, plain.latency.later_mape, plain.latency.later_coverage) == (0, None, None)
    # Exchangeable measurements: the later check agrees with the folds, and barely widens the interval.
    steady = fit_cost_model(SETTINGS, _timed(measured[:120]))
    assert steady.latency.later_n == 120 - MIN_OBSERVATIONS
    assert 0.8 <= steady.latency.later_coverage <= 1.0 and steady.latency.later_mape < 0.05
    assert steady.latency.log_halfwidth >= plain.latency.log_halfwidth  # never narrower than the folds' interval
    assert steady.latency.log_halfwidth < 1.5 * plain.latency.log_halfwidth
    # From the 60th measurement on, every latency is 8% higher (a slow phase of the host). Folds mix both phases
    # and see little; the later check predicts the slow phase from the fast one, misses, and widens the interval.
    drift = fit_cost_model(SETTINGS, _timed(measured[:120], slower_after=60, factor=1.08))
    assert drift.latency.later_coverage < steady.latency.later_coverage
    assert drift.latency.log_halfwidth > math.log(1.08) > steady.latency.log_halfwidth
    assert drift.latency.log_halfwidth > 1.2 * fit_cost_model(
        SETTINGS, [Observation(o.arch, o.latency_s, o.memory_mb) for o in _timed(
            measured[:120], slower_after=60, factor=1.08)]).latency.log_halfwidth
    # Memory did not move: its interval stays as it was.
    assert math.isclose(drift.memory.log_halfwidth, steady.memory.log_halfwidth)


def test_later_check_follows_the_time_order_not_the_input_order(measured):
    rows = _timed(measured[:80], slower_after=40, factor=1.1)
    shuffled = list(rows)
    random.Random(5).shuffle(shuffled)
    a, b = fit_cost_model(SETTINGS, rows).to_dict(), fit_cost_model(SETTINGS, shuffled).to_dict()
    a.pop("fitted_at"), b.pop("fitted_at")
    assert a == b
    # Reversed time: the slow phase comes first, and the check sees a different history.
    backwards = [Observation(o.arch, o.latency_s, o.memory_mb, -o.measured_at) for o in rows]
    assert fit_cost_model(SETTINGS, backwards).latency.later_mape != fit_cost_model(SETTINGS, rows).latency.later_mape


def test_later_check_is_bounded_in_refits(measured, monkeypatch):
    from searches.core import cost_model

    fits = []
    real = cost_model._fit_family
    monkeypatch.setattr(cost_model, "_fit_family", lambda *a: fits.append(1) or real(*a))
    fit_cost_model(SETTINGS, _timed(measured[:600]))
    # Per target: 2 families x 10 folds, the final fit, and at most 20 blocks of (1 + 10 folds) refits.
    assert len(fits) <= 2 * (2 * 10 + 1 + 20 * 11)


def test_refit_on_new_measurements_is_a_new_version(measured):
    first = fit_cost_model(SETTINGS, measured[:20])
    again = fit_cost_model(SETTINGS, measured[:20])
    more = fit_cost_model(SETTINGS, measured[:80])
    assert first.fitted_on == again.fitted_on != more.fitted_on
    assert (first.measurements, more.measurements) == (20, 80)
    # More data, better held-out error (the first fit has 20 points for up to 10 coefficients).
    held = measured[300:]
    assert heldout_report(more, held)["latency"]["mape"] <= heldout_report(first, held)["latency"]["mape"]


def test_round_trip_predicts_the_same(measured):
    model = fit_cost_model(SETTINGS, measured[:30])
    copy = CostModel.from_dict(model.to_dict())
    archs = [o.arch for o in measured[400:420]]
    for target in ("latency", "memory"):
        for x, y in zip(model.predict(archs)[target], copy.predict(archs)[target]):
            np.testing.assert_allclose(x, y)
    with pytest.raises(ValueError, match="version"):
        CostModel.from_dict({**model.to_dict(), "version": 999})


def test_bad_measurements_are_refused(measured):
    bad = Observation(measured[0].arch, float("nan"), 10.0)
    with pytest.raises(ValueError, match="latency_s must be a positive finite number"):
        fit_cost_model(SETTINGS, [bad, *measured[1:30]])
    with pytest.raises(ValueError, match="coverage"):
        fit_cost_model(SETTINGS, measured[:30], coverage=1.0)
    late = Observation(measured[0].arch, 1.0, 10.0, float("inf"))
    with pytest.raises(ValueError, match="measured_at must be a finite number"):
        fit_cost_model(SETTINGS, [late, *measured[1:30]])


def test_decode_mode_has_its_own_costs():
    decode = ProfileSettings(mode="decode", seq_len=512)
    arch = Architecture(n_layer=4, d_model=256, d_inner=512, n_head=4)
    prefill, step = features(arch, ProfileSettings(seq_len=512)), features(arch, decode)
    # One token per step instead of 512, attending over the whole cache, which now holds keys and values.
    assert math.isclose(prefill["mlp_flops"] / step["mlp_flops"], 512)
    assert step["kv_bytes"] > 0 == prefill["kv_bytes"]
    rng = np.random.default_rng(2)
    rows = [_truth(a, rng, settings=decode) for a in list(SPACE)[::40]]
    assert fit_cost_model(decode, rows).settings.mode == "decode"


def test_space_filling_design_spreads_over_the_proxy_range():
    design = space_filling_design(SPACE, 16, np.random.default_rng(0))
    assert len({a.archid for a in design}) == 16 and all(a in SPACE for a in design)
    proxies = sorted(a.non_embedding_params for a in design)
    low, high = SPACE.proxy_range()
    assert (proxies[0], proxies[-1]) == (low, high)
    # Every shape dimension is spread, not just the proxy: both ends of each appear.
    for key in ("n_layer", "d_model", "d_inner", "n_head"):
        values = {getattr(a, key) for a in design}
        assert min(getattr(SPACE, key)) in values and max(getattr(SPACE, key)) in values, key
    assert design == space_filling_design(SPACE, 16, np.random.default_rng(0))


def test_space_filling_design_skips_what_is_measured():
    first = space_filling_design(SPACE, 8, np.random.default_rng(0))
    rest = space_filling_design(SPACE, 8, np.random.default_rng(0), exclude=[a.archid for a in first])
    assert not {a.archid for a in first} & {a.archid for a in rest}
    tiny = get_space("tiny")
    assert len(space_filling_design(tiny, 500, np.random.default_rng(0))) == tiny.size
    assert space_filling_design(tiny, 5, np.random.default_rng(0), exclude=[a.archid for a in tiny]) == []


def test_the_fit_keeps_each_measurement_with_its_held_out_prediction(measured):
    rows = measured[:30]
    model = fit_cost_model(SETTINGS, rows)
    held = model.heldout
    assert sorted(held["archid"]) == held["archid"] == sorted(o.arch.archid for o in rows)
    by_id = {o.arch.archid: o for o in rows}
    assert held["latency_s"] == [by_id[a].latency_s for a in held["archid"]]
    # Held out, so not the fitted model's own predictions of its training points (those would be closer).
    fitted = model.latency.predict([by_id[a].arch for a in held["archid"]], SETTINGS)[0]
    assert not np.allclose(held["latency_pred"], fitted)
    errors = np.abs(np.array(held["latency_pred"]) / np.array(held["latency_s"]) - 1)
    assert math.isclose(float(errors.mean()), model.latency.heldout_mape)
    assert CostModel.from_dict(model.to_dict()).heldout == held
