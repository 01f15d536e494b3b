"""Small builders for search-job tests."""
from __future__ import annotations

from typing import Any

from searches import services
from searches.core.arch import Architecture
from searches.models import Measurement, SearchJob
from searches.specs import normalize_spec

# A tiny space where a whole search takes seconds: 2 * 3 * 2 * 2 = 24 architectures.
SMALL_SPACE = {"n_layer": [1, 2], "d_model": [32, 64, 96], "d_inner": [32, 64], "n_head": [2, 4],
               "vocab_size": 256, "max_sequence_length": 64}
FAST_PROFILING = {"seq_len": 32, "max_seconds": 0.2, "max_repeats": 5, "min_repeats": 3, "host_wait_s": 0.2}


def spec(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "space": SMALL_SPACE, "objectives": ["proxy", "latency", "memory"], "device": "edge-1",
        "profiling": FAST_PROFILING, "params": {"init_population": 6, "num_crossovers": 2, "num_random_mix": 2},
        "budget": {"generations": 3}, "seed": 7, "measure": "all",  # the evolution measuring every candidate
    }
    data.update(overrides)
    return normalize_spec(data)


def fake_objectives(arch) -> dict[str, float]:
    """Deterministic stand-ins for latency and memory: grow with size, with some spread between shapes."""
    proxy = arch.non_embedding_params
    return {"proxy": float(proxy), "latency": 1e-4 * arch.n_layer + proxy * 1e-9 + arch.d_inner * 1e-7,
            "memory": 10.0 + proxy / 2**20 * 4 + arch.d_model * 0.01}


def complete_measurements(objectives=fake_objectives) -> int:
    """Play the profiling worker: finish every pending measurement with deterministic values."""
    done = 0
    for m in Measurement.objects.filter(status__in=["pending", "running"]).order_by("id"):
        values = objectives(Architecture.from_dict(m.config))
        Measurement.objects.filter(pk=m.pk).update(status="done", latency_median_s=values["latency"],
                                                   peak_memory_mb=values["memory"], wall_s=0.5)
        done += 1
    return done


def run_job(job: SearchJob, *, pause_after: int | None = None, max_steps: int = 100,
            objectives=fake_objectives) -> list[str]:
    for step in range(max_steps):
        if pause_after is not None and step == pause_after:
            assert services.do_pause_search(job)
            assert services.do_advance_search(job.pk) == "paused"  # a step while paused does nothing
            complete_measurements(objectives)  # work in flight still finishes while paused
            assert services.do_advance_search(job.pk) == "paused"
            assert services.do_resume_search(job)
        outcome = services.do_advance_search(job.pk)
        if outcome in ("completed", "failed"):
            break
        complete_measurements(objectives)
    job.refresh_from_db()
    return list(job.candidates.order_by("generation", "position").values_list("archid", flat=True))


def measured(device, n: int, settings=None, *, seed: int = 0, start: int = 0) -> list[Measurement]:
    """``n`` finished measurements of gpt2-lts architectures on ``device`` under ``settings`` (default
    ProfileSettings()), with latency and memory from the synthetic ground truth of the cost-model tests; ``start``
    skips that many architectures of the same shuffled order (a later batch of the same key). They finished one
    second apart, in that order, a batch with a later ``start`` after an earlier one."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from searches.core.profiling import ProfileSettings
    from searches.core.space import get_space
    from tests.searches.core.test_cost_model import _truth

    settings = settings or ProfileSettings()
    archs = list(get_space("gpt2-lts"))
    order = np.random.default_rng(seed).permutation(len(archs))[start:start + n]
    rng = np.random.default_rng(seed + 1 + start)
    rows = []
    finished = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start)
    for k, i in enumerate(order):
        obs = _truth(archs[i], rng, settings=settings)
        rows.append(Measurement.objects.create(
            archid=obs.arch.archid, config=obs.arch.to_dict(), device=device, backend=settings.backend,
            batch_size=settings.batch_size, seq_len=settings.seq_len, threads=settings.threads, mode=settings.mode,
            dtype=settings.dtype, device_type=settings.device, status="done", latency_median_s=obs.latency_s,
            peak_memory_mb=obs.memory_mb, wall_s=1.0, finished_at=finished + timedelta(seconds=k)))
    return rows
