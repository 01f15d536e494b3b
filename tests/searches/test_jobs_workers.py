"""Search jobs on real Celery workers and real profiling: completion, SIGKILL of a worker, concurrent workers."""
from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import call_command

from searches import services
from searches.models import Candidate, Device, Measurement, SearchJob
from tests.conftest import wait_finished, wait_for
from tests.searches.factories import spec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Fast failure detection for the tests: beats every second, silent for 4 s means dead, reaper every second.
FAST_RECOVERY = {"LTS_HEARTBEAT_S": "1", "LTS_DEVICE_OFFLINE_AFTER_S": "4", "LTS_REAPER_INTERVAL_S": "1",
                 "LTS_JOB_STALL_S": "5"}


def _device_name() -> str:
    return f"dev-{uuid.uuid4().hex[:6]}"


def _start_profiler(start_worker, name: str):
    worker = start_worker([f"profile.{name}"], env={"LTS_DEVICE": name, **FAST_RECOVERY})
    wait_for(lambda: Device.objects.filter(name=name).exists(), 90, message=f"device {name} to register")
    return worker


def _evaluated(job: SearchJob) -> list[str]:
    return list(job.candidates.order_by("generation", "position").values_list("archid", flat=True))


def _pareto(job: SearchJob) -> set[str]:
    return set(job.candidates.filter(is_pareto=True).values_list("archid", flat=True))




def test_lts_search_runs_a_tiny_search_to_completion_with_real_profiling(start_worker, actors, tmp_path):
    name = _device_name()
    start_worker(["control"], env=FAST_RECOVERY)
    _start_profiler(start_worker, name)
    body = {"space": spec()["space"], "profiling": spec()["profiling"], "params": {"init_population": 4,
            "num_crossovers": 2, "num_random_mix": 2}}
    (tmp_path / "spec.json").write_text(json.dumps(body))
    out = io.StringIO()
    call_command("lts_search", "--spec", str(tmp_path / "spec.json"), "--generations", "2", "--device", name,
                 "--user", "alice", "--name", "cli", "--timeout", "240", "--host-wait", "0.1", stdout=out)
    text = out.getvalue()
    job = SearchJob.objects.get(name="cli")
    assert job.status == "completed" and job.generation == 2, text
    assert job.spec["profiling"]["host_wait_s"] == 0.1 and job.spec["profiling"]["seq_len"] == 32
    assert "generation 2/2" in text and f"search #{job.pk} completed" in text
    pareto = job.candidates.filter(is_pareto=True)
    assert pareto.exists() and all(c.archid in text for c in pareto)
    for c in job.candidates.select_related("measurement"):
        assert c.status == "measured" and c.measurement.status == "done"
        assert c.measurement.latency_median_s > 0 and c.measurement.peak_memory_mb > 0
        assert c.measurement.device.name == name
        assert c.measurement.details["host"]["wait_s"] == 0.1
    assert len(job.hypervolumes) == 2 and job.hypervolumes[-1]["hypervolume"] > 0


def test_lts_search_refuses_a_negative_host_wait_with_the_field(actors):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="host_wait_s"):
        call_command("lts_search", "--preset", "tiny", "--device", "nowhere", "--user", "alice", "--host-wait", "-1",
                     "--no-wait", stdout=io.StringIO())
    assert not SearchJob.objects.exists()


def test_sigkill_of_the_profiling_worker_mid_job_loses_and_repeats_nothing(start_worker, actors):
    name = _device_name()
    start_worker(["control"], env=FAST_RECOVERY)
    start_worker([], env=FAST_RECOVERY, beat=True)
    first = _start_profiler(start_worker, name)
    job_spec = spec(device=name, budget={"generations": 3},
                    profiling={"seq_len": 32, "max_seconds": 0.5, "min_repeats": 3, "max_repeats": 400,
                               "host_wait_s": 0.2})
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="killed", spec=job_spec)
    # Kill it while a measurement runs, after at least one finished.
    wait_for(lambda: Measurement.objects.filter(device__name=name, status="done").exists()
             and Measurement.objects.filter(device__name=name, status="running").exists(), 120,
             interval_s=0.05, message="a measurement in progress")
    interrupted = Measurement.objects.get(device__name=name, status="running").pk
    first.kill()
    second = _start_profiler(start_worker, name)
    wait_finished(job, 240, second)
    assert job.status == "completed", job.error

    candidates = list(job.candidates.select_related("measurement"))
    assert all(c.status == "measured" for c in candidates)
    # One measurement per candidate, each done exactly once (the unique key allows no second row).
    measurements = Measurement.objects.filter(device__name=name)
    assert measurements.count() == len(candidates) == len({c.measurement_id for c in candidates})
    assert set(measurements.values_list("status", flat=True)) == {"done"}
    again = Measurement.objects.get(pk=interrupted)
    assert again.attempts == 2 and again.claimed_by != "" and again.status == "done"

    # The same search, uninterrupted, on the values now cached: the same architectures and the same frontier.
    twin = services.do_create_search(owner=actors.alice, team=actors.acme, name="twin", spec=job_spec)
    wait_finished(twin, 120)
    assert _evaluated(twin) == _evaluated(job)
    assert _pareto(twin) == _pareto(job)
    assert measurements.count() == len(candidates)


def test_two_control_workers_on_one_job_create_no_duplicates(start_worker, actors):
    from workers.tasks import advance_search

    name = _device_name()
    workers = [start_worker(["control"], env=FAST_RECOVERY, concurrency=2) for _ in range(2)]
    _start_profiler(start_worker, name)
    job_spec = spec(device=name, budget={"generations": 3})
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="busy", spec=job_spec)
    for _ in range(20):  # a storm of duplicate steps, as redeliveries and notifications might cause
        advance_search.delay(job.pk)
    wait_finished(job, 240, *workers)
    assert job.status == "completed", job.error
    archids = _evaluated(job)
    assert len(archids) == len(set(archids)) == Candidate.objects.filter(job=job).count()
    assert job.generation == 3
    twin = services.do_create_search(owner=actors.bob, team=actors.acme, name="calm", spec=job_spec)
    wait_finished(twin, 120)
    assert _evaluated(twin) == archids and _pareto(twin) == _pareto(job)
