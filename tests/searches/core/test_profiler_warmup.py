"""A fresh profiling worker is warmed before its first timed measurement (without it a fresh worker's first
measurements were 2-3x slower than their siblings', 120.7 ms against 34.9 ms, and one became a frontier point)."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from searches.core.arch import Architecture
from searches.core.profiling import ProfileSettings, profile, runner

ROOT = Path(__file__).resolve().parents[3]
# bench/profiling.py's repeatability goal: two measurements of the same architecture within 3% (median difference).
REPEATABILITY = 0.03
MEDIUM = Architecture(2, 384, 1536, 4, vocab_size=1000, max_sequence_length=128)
FAST: dict[str, Any] = dict(seq_len=64, min_repeats=5, max_seconds=0.5, host_wait_s=2.0)


def test_the_first_measurement_of_a_process_follows_a_discarded_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_child(target: str, payload: dict[str, Any], budget: Any) -> dict[str, Any]:
        calls.append(payload["settings"])
        return {"param_bytes": 1, "phases": {"latency": 0.1}, "latency": None, "peak_memory_mb": 1.0,
                "memory_method": "vmhwm", "background_cpu": None, "host": None}

    monkeypatch.setattr(runner, "_run_child", fake_child)
    monkeypatch.setattr(runner, "_warmed", set())
    settings = ProfileSettings(**FAST)
    first = profile(MEDIUM, settings)
    assert [c["max_seconds"] for c in calls] == [0.5, 0.5] and calls[0]["max_repeats"] == 5  # warm-up, then timed
    assert calls[1] == settings.to_dict() and "worker_warmup" in first.phases_s
    calls.clear()
    later = profile(MEDIUM, settings)
    assert len(calls) == 1 and "worker_warmup" not in later.phases_s  # once per process and settings
    profile(MEDIUM, ProfileSettings(**{**FAST, "threads": 2}))
    assert len(calls) == 3  # other threads: another warm-up


FIRST_SLOWER_AT_MOST = 0.25  # than the slowest later one: a cold first measurement was 2-3x slower

_FRESH_WORKER = """
import json
from searches.core.arch import Architecture
from searches.core.profiling import ProfileSettings, profile
if __name__ == "__main__":
    arch = Architecture(2, 384, 1536, 4, vocab_size=1000, max_sequence_length=128)
    settings = ProfileSettings(seq_len=64, min_repeats=5, max_seconds=0.5, host_wait_s=2.0)
    print(json.dumps([profile(arch, settings).latency.median for _ in range(4)]))
"""


@pytest.mark.slow
def test_the_first_measurement_of_a_fresh_worker_is_within_the_repeatability_goal_of_a_later_one(tmp_path) -> None:
    """A fresh process (a worker just started) measures one architecture four times: the first is not slower than the
    later ones by more than the goal. Skipped, with the figures, when the later ones disagree among themselves by more than the goal:
    then this host is too busy to judge any single measurement."""
    script = tmp_path / "fresh_worker.py"
    script.write_text(_FRESH_WORKER)
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    first, *later = json.loads(out.stdout.strip().splitlines()[-1])
    reference = statistics.median(later)
    spread = (max(later) - min(later)) / reference
    if spread > 2 * REPEATABILITY:
        pytest.skip(f"host too busy to judge: later medians {[round(x * 1e3, 2) for x in later]} ms "
                    f"spread {spread:.1%}")
    # The defect was a first measurement 2-3x slower than its siblings (a cold process). Under the whole suite's load
    # a warmed first one still ran 4-7% slower than the later ones (a timing this test cannot control), on a quiet
    # host within the 3% goal (BENCHMARKS.md, "A fresh worker's first measurement"): the test catches the defect,
    # the benchmark holds the goal. One-sided: a first one a little faster is the host's noise.
    assert (first - max(later)) / max(later) <= FIRST_SLOWER_AT_MOST, (first, later, reference)
