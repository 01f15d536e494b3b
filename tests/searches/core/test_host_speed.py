"""The host-speed check: runs wait out slow phases, runs with a slow probe after them are discarded, all within a
budget. A scripted probe and a fake clock: no timing here depends on the machine."""
from __future__ import annotations

from collections.abc import Iterable

import pytest

from searches.core.profiling.host_speed import HostGate, probe_s
from searches.core.profiling.stats import repeat_until_stable

FAST, SLOW = 2.0e-3, 3.2e-3  # probe seconds at full speed and in a slow phase, as seen here


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def gate(probes: Iterable[float], *, reference: float | None = FAST, wait_s: float = 10.0,
         clock: Clock | None = None) -> tuple[HostGate, Clock]:
    clock = clock or Clock()
    script = iter(probes)
    return HostGate(reference, tolerance=0.10, wait_s=wait_s, probe=lambda: next(script), sleep=clock.sleep,
                    clock=clock), clock


def run_taking(clock: Clock, seconds: float):
    def run() -> float:
        clock.now += seconds
        return seconds
    return run


def test_a_fast_host_costs_only_the_probes() -> None:
    g, clock = gate([FAST] * 20)
    timed = g.timed(run_taking(clock, 1.0))
    assert [timed() for _ in range(3)] == [1.0, 1.0, 1.0]
    summary = g.summary()
    assert (summary["discarded_runs"], summary["spent_s"], summary["budget_spent"]) == (0, 0.0, False)
    # One probe before the first run and one after each: a fresh "after" serves as the next "before".
    assert summary["probes"] == 4


def test_a_run_waits_while_the_host_is_slow() -> None:
    g, clock = gate([SLOW, SLOW, FAST, FAST])
    assert g.timed(run_taking(clock, 1.0))() == 1.0
    assert g.spent_s == pytest.approx(0.5) and g.discarded == 0  # two checks 0.25 s apart, then it ran


def test_a_run_with_a_slow_probe_after_it_is_discarded_and_its_time_does_not_count() -> None:
    g, clock = gate([FAST, SLOW, FAST, FAST, FAST, FAST])
    samples = iter([1.5, 1.0, 1.0])

    def run() -> float:
        took = next(samples)
        clock.now += took
        return took

    timed = g.timed(run)
    assert timed() is None  # the host turned slow during the run
    assert timed() == 1.0 and timed() == 1.0
    assert g.discarded == 1 and g.spent_s == pytest.approx(1.5)


def test_once_the_budget_is_spent_every_run_counts() -> None:
    g, clock = gate([SLOW] * 100, wait_s=1.0)
    timed = g.timed(run_taking(clock, 0.4))
    results = [timed() for _ in range(4)]
    assert results.count(None) <= 1 and results[-1] == 0.4
    assert g.summary()["budget_spent"] is True
    # And repeat_until_stable, which skips discarded runs, still ends.
    stats = repeat_until_stable(timed, rel_tolerance=0.02, min_repeats=3, max_repeats=5, max_seconds=10)
    assert stats.n == 3


def test_without_a_reference_it_calibrates_and_a_faster_probe_lowers_it() -> None:
    g, clock = gate([2.4e-3, 2.2e-3, 2.3e-3, 2.2e-3, 1.9e-3, 2.0e-3], reference=None)
    assert g.reference_s == pytest.approx(2.2e-3) and len(g.probes) == 3
    timed = g.timed(run_taking(clock, 1.0))
    assert timed() == 1.0  # 2.2 ms before (within 10%), 1.9 ms after: the new reference
    assert g.reference_s == pytest.approx(1.9e-3)
    assert timed() == 1.0
    assert g.summary()["reference_ms"] == pytest.approx(1.9)


def test_repeat_until_stable_skips_discarded_runs_and_their_time() -> None:
    values = iter([None, 1.0, None, 1.0, 1.0])
    stats = repeat_until_stable(lambda: next(values), rel_tolerance=0.02, min_repeats=3, max_repeats=10,
                                max_seconds=10)
    assert stats.samples == (1.0, 1.0, 1.0) and stats.stopped_by == "tolerance"


def test_the_probe_is_a_few_milliseconds_of_real_work() -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        took = [probe_s() for _ in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert all(1e-4 < t < 0.2 for t in took), took
