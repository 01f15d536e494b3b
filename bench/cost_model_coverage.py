"""How well the cost models' 90% intervals hold on real measurements taken in the order a search took them.

    .venv/bin/python bench/cost_model_coverage.py --var /tmp/lts-bench-e2e-XXXX --device bench-all
                                        # the measurements of a bench/search_e2e.py run (it prints its --var folder)
    .venv/bin/python bench/cost_model_coverage.py --device edge-1   # a device of this checkout's own database

Reads the finished measurements of one device and one set of profiling settings (the key with the most), in the
order they finished, and reports for the interval of this code (the larger of the K-fold and the later-measurement
conformal quantiles, searches/core/cost_model.py) beside the K-fold interval alone (the same fit without
``measured_at``):

- fit on the first n (25, 50, 100), tested on everything measured later, and on the next 50 only;
- the product's own check: each block of measurements predicted with its interval by the model fit on what was
  measured before it (CostModel.later_*; what a search meets when it refits every round);
- the same measurements in a random order (exchangeable: what conformal intervals promise);
- the host's speed at each measurement (the profiler's probe against the fastest it had seen, ProfileResult.host)
  beside the latency residuals, per block of 50: a slow phase of a shared host moves every latency at once.

No timing happens here: it runs in seconds on stored measurements.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, setup_django

Fit = Callable[[Sequence], object]


def _load(device: str):
    from django.db.models import Count

    from searches.core.arch import Architecture
    from searches.core.cost_model import Observation
    from searches.models import MEASUREMENT_KEY_FIELDS, Measurement
    from searches.services.predictor import key_settings

    done = Measurement.objects.filter(device__name=device, status="done", latency_median_s__gt=0,
                                      peak_memory_mb__gt=0, finished_at__isnull=False)
    keys = list(done.values(*MEASUREMENT_KEY_FIELDS).annotate(n=Count("id")).order_by("-n"))
    if not keys:
        raise SystemExit(f"no finished measurements of device {device!r}")
    key = {k: keys[0][k] for k in MEASUREMENT_KEY_FIELDS}
    rows = list(done.filter(**key).order_by("finished_at", "id"))
    observations, host = [], []
    for m in rows:
        observations.append(Observation(Architecture.from_dict(m.config), m.latency_median_s, m.peak_memory_mb,
                                        m.finished_at.timestamp()))
        probe = (m.details or {}).get("host") or {}
        host.append(probe["probe_ms_median"] / probe["reference_ms"] if probe.get("reference_ms") else np.nan)
    return key_settings(key), key, observations, np.array(host)


def _score(settings, fit_rows: Sequence, test: Sequence, timed: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Relative errors and inside-interval flags of ``test`` under the model fit on ``fit_rows``."""
    from searches.core.cost_model import Observation, fit_cost_model

    rows = fit_rows if timed else [Observation(o.arch, o.latency_s, o.memory_mb) for o in fit_rows]
    predicted = fit_cost_model(settings, rows).predict([o.arch for o in test])
    out = {}
    for target in ("latency", "memory"):
        y = np.array([o.value(target) for o in test])
        value, low, high = predicted[target]
        out[target] = (np.abs(value / y - 1), (y >= low) & (y <= high))
    return out


def _row(label: str, scored: dict) -> str:
    lat, mem = scored["latency"], scored["memory"]
    return (f"| {label} | {lat[0].size} | {lat[0].mean():.1%} | {lat[1].mean():.0%} | {mem[0].mean():.2%} | "
            f"{mem[1].mean():.0%} |")


def _concat(parts: list[dict]) -> dict:
    return {t: (np.concatenate([p[t][0] for p in parts]), np.concatenate([p[t][1] for p in parts]))
            for t in ("latency", "memory")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--var", type=Path, help="LTS_VAR_DIR of the run to read (default: this checkout's)")
    parser.add_argument("--device", required=True)
    parser.add_argument("--shuffles", type=int, default=5, help="random orders averaged (1-100)")
    args = parser.parse_args()
    if not 1 <= args.shuffles <= 100:
        parser.error("--shuffles takes 1 to 100")
    env = {"DEBUG": "1", "LOG_LEVEL": "WARNING"}
    if args.var:
        env["LTS_VAR_DIR"] = str(args.var)
    setup_django(env)
    from searches.core.cost_model import fit_cost_model

    settings, key, obs, host = _load(args.device)
    n = len(obs)
    print(f"device {args.device}, key {key}: {n} measurements; machine: {machine()}\n")
    print("| protocol | tested | latency MAPE | latency 90% coverage | memory MAPE | memory 90% coverage |")
    print("|---|---|---|---|---|---|")
    for timed, name in ((True, "this code (folds and later)"), (False, "K-fold only")):
        for first in (25, 50, 100):
            if n >= first + 10:
                print(_row(f"{name}: first {first}, tested on the rest", _score(settings, obs[:first], obs[first:], timed)))
                print(_row(f"{name}: first {first}, tested on the next 50",
                           _score(settings, obs[:first], obs[first:first + 50], timed)))
        blocks = [_score(settings, obs[:s], obs[s:s + 10], timed) for s in range(20, n, 10)]
        if blocks:
            print(_row(f"{name}: refit every 10, each block tested before it is fit on", _concat(blocks)))
        rng = np.random.default_rng(0)
        shuffled = []
        for _ in range(args.shuffles):
            order = [obs[i] for i in rng.permutation(n)]
            shuffled.append(_score(settings, order[:50], order[50:], timed))
        if n >= 60:
            print(_row(f"{name}: first 50 of a random order, tested on the rest ({args.shuffles} orders)",
                       _concat(shuffled)))
    model = fit_cost_model(settings, obs)
    print(f"\nThe product's check on all {n} (CostModel.later_*, as the device page shows it): "
          f"{model.latency.later_n} later measurements; latency MAPE {model.latency.later_mape:.1%}, coverage "
          f"{model.latency.later_coverage:.0%}; memory MAPE {model.memory.later_mape:.2%}, coverage "
          f"{model.memory.later_coverage:.0%}; interval half-width now: latency x/ {np.exp(model.latency.log_halfwidth):.3f}, "
          f"memory x/ {np.exp(model.memory.log_halfwidth):.4f}")

    if np.isfinite(host).any():
        first50 = fit_cost_model(settings, obs[:50])
        y = np.array([o.latency_s for o in obs])
        residual = np.log(y / first50.predict([o.arch for o in obs])["latency"][0])
        residual_all = np.log(y / model.predict([o.arch for o in obs])["latency"][0])
        ok = np.isfinite(host)
        corr = np.corrcoef(np.log(host[ok]), residual_all[ok])[0, 1]
        print(f"\nHost speed (profiler probe / fastest probe seen) against latency residuals; correlation of log probe "
              f"ratio with the residual of the model fit on all: {corr:.2f}")
        print("| measurements | mean d_model | host probe ratio | latency vs model of the first 50 | "
              "inside its interval |\n|---|---|---|---|---|")
        lat_first = _score(settings, obs[:50], obs, True)["latency"][1]
        for s in range(0, n, 50):
            part = slice(s, min(s + 50, n))
            print(f"| {s + 1}-{part.stop} | {np.mean([o.arch.d_model for o in obs[part]]):.0f} | "
                  f"{np.nanmean(host[part]):.3f} | {np.mean(residual[part]):+.1%} | {lat_first[part].mean():.0%} |")


if __name__ == "__main__":
    main()
