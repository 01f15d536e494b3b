"""Is the host running at full speed right now? A timed run counts only if a short compute probe says so before and
after it.

On a virtual machine the cores are shared with other guests the profiler cannot see: no process here is busy and
the hypervisor reports no steal, yet for 10-20 s at a time everything runs 20-50% slower (bench/profiling.py and
BENCHMARKS.md: a 16M model's forward went from 0.98 s to 1.3-1.6 s in such phases, and two passes over the same 20
architectures differed by 27% in median). More repeats in one process cannot average that out, because a phase
outlasts a whole measurement. A probe can see it: the same few small matrix products, timed on the measuring
process's own threads, take ~2.1 ms at full speed and 3.2-3.4 ms in a slow phase.

So each timed run is bracketed by probes, compared with the fastest probe this worker has seen (the reference,
kept by the parent across measurements): while the host is slow the run waits; a run with a slow probe after it is
discarded and repeated. Both only within ``wait_s`` a measurement; once that is spent every run counts, and the
result says how many were discarded and how long it waited. CPU only: a GPU run is not slowed by this.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HostGate", "probe_s"]

_PROBE_SIZE = 256
_PROBE_PRODUCTS = 8
_PROBE_SAMPLES = 5
_RECHECK_S = 0.25  # sleep between probes while the host is slow
_FRESH_S = 0.05  # a probe this recent (the one after the previous run) also serves as the next run's "before"


def probe_s() -> float:
    """Median of 5 timings of 8 products of 256 x 256 float32 matrices on torch's current threads: ~10 ms in all."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(_PROBE_SIZE, _PROBE_SIZE, generator=gen)
    b = torch.randn(_PROBE_SIZE, _PROBE_SIZE, generator=gen)
    c = torch.mm(a, b)  # written into from now on: no allocation (and no page fault) is timed
    samples = []
    for _ in range(_PROBE_SAMPLES):
        start = time.perf_counter()
        for _ in range(_PROBE_PRODUCTS):
            torch.mm(a, b, out=c)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class HostGate:
    """Waits out slow phases of the host around timed runs, within a time budget.

    ``reference_s``: the fastest probe seen before (None: calibrate with a few probes now). A probe is "fast" when
    it is within ``tolerance`` of the reference; a faster probe lowers the reference.
    """

    def __init__(self, reference_s: float | None, *, tolerance: float, wait_s: float,
                 probe: Callable[[], float] = probe_s, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.tolerance, self.wait_s = tolerance, wait_s
        self._probe, self._sleep, self._clock = probe, sleep, clock
        self.reference_s = reference_s
        self.probes: list[float] = []
        self.discarded = 0
        self.spent_s = 0.0  # waiting plus discarded runs
        self._last: tuple[float, bool] | None = None  # (when, fast) of the latest probe
        if reference_s is None:
            for _ in range(3):
                self._check()
            self._last = None

    @property
    def budget_left(self) -> bool:
        return self.spent_s < self.wait_s

    def _check(self) -> bool:
        took = self._probe()
        self.probes.append(took)
        if self.reference_s is None or took < self.reference_s:
            self.reference_s = took
        fast = took <= self.reference_s * (1 + self.tolerance)
        self._last = (self._clock(), fast)
        return fast

    def before_run(self) -> None:
        """Return when the host is fast, or when the budget is spent."""
        if self._last is not None and self._last[1] and self._clock() - self._last[0] <= _FRESH_S:
            return
        while not self._check() and self.budget_left:
            start = self._clock()
            self._sleep(_RECHECK_S)
            self.spent_s += self._clock() - start

    def after_run(self, took_s: float) -> bool:
        """True if the run counts: the host was still fast after it (or the budget is spent)."""
        if self._check() or not self.budget_left:
            return True
        self.discarded += 1
        self.spent_s += took_s
        return False

    def timed(self, run: Callable[[], float]) -> Callable[[], float | None]:
        """``run`` (returns one sample, seconds) behind the gate: the sample, or None for a discarded run."""
        def gated() -> float | None:
            self.before_run()
            start = self._clock()
            sample = run()
            return sample if self.after_run(self._clock() - start) else None
        return gated

    def summary(self) -> dict[str, Any]:
        """What ProfileResult.host records."""
        probes = self.probes or [0.0]
        return {
            "reference_ms": round((self.reference_s or 0.0) * 1e3, 4),
            "probe_ms_median": round(statistics.median(probes) * 1e3, 4),
            "probe_ms_max": round(max(probes) * 1e3, 4),
            "probes": len(self.probes), "discarded_runs": self.discarded, "spent_s": round(self.spent_s, 3),
            "budget_spent": not self.budget_left, "tolerance": self.tolerance, "wait_s": self.wait_s,
        }
