"""Search orchestration, step by step in-process (the real-worker runs are in test_jobs_workers.py)."""
from __future__ import annotations

import pytest
from django.utils import timezone

from lts_web.errors import Conflict
from searches import services
from searches.core.arch import Architecture
from searches.core.evolution import run_search
from searches.models import Candidate, Device, Measurement, SearchJob
from searches.specs import search_params, space_of
from tests.searches.factories import complete_measurements as _complete_measurements
from tests.searches.factories import fake_objectives, spec
from tests.searches.factories import run_job as _run

pytestmark = pytest.mark.django_db


def test_the_orchestrator_evaluates_what_the_core_search_evaluates(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="s", spec=spec())
    evaluated = _run(job)
    assert job.status == "completed" and job.generation == 3
    expected = run_search(fake_objectives, space_of(job.spec), search_params(job.spec))
    assert evaluated == [e.arch.archid for e in expected.history]
    pareto = set(job.candidates.filter(is_pareto=True).values_list("archid", flat=True))
    assert pareto == {e.arch.archid for e in expected.frontier}
    assert [h["generation"] for h in job.hypervolumes] == [0, 1, 2]
    volumes = [h["hypervolume"] for h in job.hypervolumes]
    assert volumes[0] > 0 and volumes == sorted(volumes)  # a fixed reference: the frontier only grows
    assert job.hardware_seconds == pytest.approx(0.5 * len(evaluated))


def test_pause_and_resume_evaluate_the_same_architectures(actors, device, no_messages):
    plain = services.do_create_search(owner=actors.alice, team=actors.acme, name="a", spec=spec(seed=3))
    expected = _run(plain)
    Measurement.objects.all().delete()  # measure afresh for the second job
    paused = services.do_create_search(owner=actors.alice, team=actors.acme, name="b", spec=spec(seed=3))
    assert _run(paused, pause_after=2) == expected
    assert paused.status == "completed"


def test_cached_measurements_are_reused_and_cost_no_hardware_time(actors, device, no_messages):
    first = services.do_create_search(owner=actors.alice, team=actors.acme, name="a", spec=spec())
    _run(first)
    measurements = Measurement.objects.count()
    second = services.do_create_search(owner=actors.bob, team=actors.acme, name="b", spec=spec())
    assert _run(second) == list(first.candidates.values_list("archid", flat=True).order_by("generation", "position"))
    assert Measurement.objects.count() == measurements
    assert second.hardware_seconds == 0 and not second.candidates.filter(cache_hit=False).exists()


def test_proxy_only_search_needs_no_device(actors, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="p",
                                    spec=spec(objectives=["proxy"], device=None))
    _run(job)
    assert job.status == "completed" and job.device is None
    assert not Measurement.objects.exists()
    # One objective: the largest are optimal (n_head does not change the count, so ties share the front).
    largest = max(job.candidates.values_list("non_embedding_params", flat=True))
    assert set(job.candidates.filter(is_pareto=True).values_list("non_embedding_params", flat=True)) == {largest}


def test_offline_device_shows_waiting_then_running(actors, device, no_messages):
    Device.objects.filter(pk=device.pk).update(last_heartbeat=None)
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="w", spec=spec())
    services.do_advance_search(job.pk)
    job.refresh_from_db()
    assert job.status == "waiting-for-device"
    Device.objects.filter(pk=device.pk).update(last_heartbeat=timezone.now())
    services.do_advance_search(job.pk)
    job.refresh_from_db()
    assert job.status == "running"


def test_budget_of_candidates_and_latency_constraint(actors, device, no_messages):
    tight = spec(budget={"generations": 5, "max_candidates": 8}, constraints={"max_latency": 2e-4})
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="c", spec=tight)
    _run(job)
    assert job.candidates.count() == 8 and job.status == "completed"
    infeasible = job.candidates.filter(feasible=False)
    assert infeasible.exists() and not infeasible.filter(is_pareto=True).exists()
    for c in job.candidates.filter(feasible=True):
        assert fake_objectives(Architecture.from_dict(c.config))["latency"] <= 2e-4


def test_cancel_revokes_unshared_measurements_and_stops(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="x", spec=spec())
    services.do_advance_search(job.pk)
    assert Measurement.objects.filter(status="pending").count() == 6
    assert services.do_cancel_search(job)
    job.refresh_from_db()
    assert job.status == "cancelled" and not Measurement.objects.exists()
    assert set(job.candidates.values_list("status", flat=True)) == {"cancelled"}
    assert services.do_advance_search(job.pk) == "cancelled"
    with pytest.raises(Conflict, match="cannot cancel a search that is cancelled"):
        services.do_cancel_search(job)


def test_retry_failed_candidates(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="r", spec=spec(budget={"generations": 1}))
    services.do_advance_search(job.pk)
    broken = Measurement.objects.first()
    Measurement.objects.filter(pk=broken.pk).update(status="failed", error="out of memory")
    _complete_measurements()
    assert services.do_advance_search(job.pk) == "completed"
    assert job.candidates.filter(status="failed").count() == 1
    assert services.do_retry_failed(job) == 1
    job.refresh_from_db()
    assert job.status == "running"
    _complete_measurements()
    assert services.do_advance_search(job.pk) == "completed"
    assert not job.candidates.filter(status="failed").exists()


def test_replayed_step_creates_no_duplicates(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="d", spec=spec())
    for _ in range(3):
        services.do_advance_search(job.pk)  # measurements pending: nothing more to do
    assert Candidate.objects.filter(job=job).count() == 6
    job.refresh_from_db()
    assert job.generation == 1


def test_reaper_kicks_stalled_searches(actors, device, settings, outbox):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="k", spec=spec())
    SearchJob.objects.filter(pk=job.pk).update(status="running", advanced_at=timezone.now() - timezone.timedelta(hours=1))
    assert services.do_reap_searches() == [job.pk]
    assert services.do_reap_searches() == []  # one kick per stall period
