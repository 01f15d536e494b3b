"""Latency statistics and the repeat-until-stable loop."""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LatencyStats", "latency_stats", "median_ci95", "repeat_until_stable"]

# Student t 0.975 quantiles for 1..30 degrees of freedom; beyond, 1.96 + 2.4/df is within 0.002 of the truth.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class LatencyStats:
    """Latency in seconds: per forward for prefill, per generated token for decode."""

    median: float
    min: float  # interference only ever slows a run: the minimum is the most repeatable figure on a shared machine
    p10: float
    p90: float
    mean: float
    std: float
    n: int
    ci95: float  # relative half-width of the median's 95% confidence interval (0.02 = +-2%)
    stopped_by: str  # "tolerance" | "max_seconds" | "max_repeats" | "" (summary of given samples)
    samples: tuple[float, ...] = ()


def median_ci95(samples: list[float]) -> float:
    """Relative half-width of the median's 95% CI: t(0.975, n-1) * sqrt(pi/2) * s / sqrt(n) / median.

    sqrt(pi/2) = 1.2533 is the median's standard error relative to the mean's under normal noise; the t quantile
    keeps 3 samples honest (4.3 instead of 1.96). Infinite below 2 samples.
    """
    n = len(samples)
    median = statistics.median(samples) if samples else 0.0
    if n < 2 or median <= 0:
        return math.inf
    df = n - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df
    return t * math.sqrt(math.pi / 2) * statistics.stdev(samples) / math.sqrt(n) / median


def latency_stats(samples: list[float], stopped_by: str = "") -> LatencyStats:
    """Summary of timed samples in seconds (p10/p90 interpolate between order statistics)."""
    if not samples:
        raise ValueError("latency_stats needs at least one sample")
    ordered = sorted(samples)
    if len(ordered) >= 2:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = ordered[0]
    return LatencyStats(
        median=statistics.median(ordered), min=ordered[0], p10=p10, p90=p90, mean=statistics.fmean(ordered),
        std=statistics.stdev(ordered) if len(ordered) >= 2 else 0.0, n=len(ordered),
        ci95=median_ci95(ordered), stopped_by=stopped_by, samples=tuple(samples),
    )


def repeat_until_stable(
    run_once: Callable[[], float | None], *, rel_tolerance: float, min_repeats: int, max_repeats: int,
    max_seconds: float,
) -> LatencyStats:
    """Call run_once (it returns one sample in seconds) until the median's CI is within rel_tolerance, at least
    min_repeats times; stop early at max_repeats, or at max_seconds of timed runs once min_repeats are done.

    run_once may return None for a discarded run (host_speed.HostGate): it is not a sample, and its time does not
    count towards max_seconds. Whoever discards must stop doing so (the gate's budget) or this never returns.
    """
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        call_start = time.perf_counter()
        sample = run_once()
        if sample is None:
            start += time.perf_counter() - call_start
            continue
        samples.append(sample)
        n = len(samples)
        if n >= max_repeats:
            return latency_stats(samples, "max_repeats")
        if n >= min_repeats:
            if median_ci95(samples) <= rel_tolerance:
                return latency_stats(samples, "tolerance")
            if time.perf_counter() - start >= max_seconds:
                return latency_stats(samples, "max_seconds")
