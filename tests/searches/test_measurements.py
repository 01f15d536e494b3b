"""The shared measurement cache, device routing, heartbeats and the reaper (the Django side)."""
from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from searches import services
from searches.core.arch import Architecture
from searches.core.profiling import ProfileSettings
from searches.models import Device, Measurement
from tests.conftest import wait_for

TINY = Architecture(n_layer=1, d_model=32, d_inner=64, n_head=2, vocab_size=256, max_sequence_length=64)
SMALL_SETTINGS = ProfileSettings(seq_len=32, max_seconds=0.3, max_repeats=5, host_wait_s=0.2)


@pytest.fixture
def sent(monkeypatch, outbox):
    """Record task messages instead of sending them (at once: the test's transaction never commits)."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    return outbox


@pytest.mark.django_db
def test_second_request_for_a_key_is_a_cache_hit_and_sends_nothing(sent):
    device = Device.objects.create(name="edge-1")
    first = services.do_request_measurement(TINY, device, SMALL_SETTINGS)
    second = services.do_request_measurement(TINY, device, SMALL_SETTINGS)
    assert first.dispatched and not first.cached
    assert second.measurement.pk == first.measurement.pk
    assert not second.dispatched and second.cached
    assert len(sent) == 1 and sent[0]["queue"] == "profile.edge-1"
    assert sent[0]["args"] == [first.measurement.pk]
    # Another key field (threads) is another measurement; tolerance is not part of the key.
    other = services.do_request_measurement(TINY, device, ProfileSettings(seq_len=32, threads=2))
    same = services.do_request_measurement(TINY, device, ProfileSettings(seq_len=32, rel_tolerance=0.05))
    assert other.measurement.pk != first.measurement.pk
    assert same.measurement.pk == first.measurement.pk
    assert Measurement.objects.count() == 2


@pytest.mark.django_db
def test_settings_that_do_not_fit_the_architecture_are_refused(sent):
    device = Device.objects.create(name="edge-1")
    with pytest.raises(Exception, match="max_sequence_length"):
        services.do_request_measurement(TINY, device, ProfileSettings(seq_len=1024))
    assert not Measurement.objects.exists() and not sent


@pytest.mark.django_db
def test_claim_is_exclusive_and_only_the_claimant_saves(sent):
    device = Device.objects.create(name="edge-1")
    m = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    assert services.try_claim_measurement(m.pk, "w1")
    assert not services.try_claim_measurement(m.pk, "w2")  # live heartbeat: nobody else may take it
    assert not services.do_fail_measurement(m.pk, "w2", "not mine")
    m.refresh_from_db()
    assert m.status == "running" and m.claimed_by == "w1" and m.attempts == 1


@pytest.mark.django_db
def test_reaper_requeues_a_silent_measurement_then_fails_it(sent, settings):
    settings.LTS_MEASUREMENT_MAX_ATTEMPTS = 2
    device = Device.objects.create(name="edge-1")
    m = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    old = timezone.now() - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S + 5)

    assert services.try_claim_measurement(m.pk, "w1")
    Measurement.objects.filter(pk=m.pk).update(heartbeat_at=old)  # the worker died
    assert services.do_reap_measurements() == {"requeued": 1, "failed": 0, "redispatched": 0}
    m.refresh_from_db()
    assert m.status == "pending" and len(sent) == 2 and sent[1]["task_id"] == m.task_id

    assert services.try_claim_measurement(m.pk, "w2")
    Measurement.objects.filter(pk=m.pk).update(heartbeat_at=old)
    assert services.do_reap_measurements() == {"requeued": 0, "failed": 1, "redispatched": 0}
    m.refresh_from_db()
    assert m.status == "failed" and "2 times" in m.error and "w2" in m.error
    assert services.do_reap_measurements() == {"requeued": 0, "failed": 0, "redispatched": 0}


@pytest.mark.django_db
def test_reaper_resends_a_pending_measurement_whose_message_was_lost(sent, settings):
    device = Device.objects.create(name="edge-1", last_heartbeat=timezone.now())
    m = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    assert len(sent) == 1  # recorded, never reached the (empty) queue: as if the broker lost it
    assert services.do_reap_measurements()["redispatched"] == 0  # too recent to call lost
    Measurement.objects.filter(pk=m.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.LTS_PENDING_REDISPATCH_S + 1))
    assert services.do_reap_measurements()["redispatched"] == 1
    m.refresh_from_db()
    assert len(sent) == 2 and sent[1]["task_id"] == m.task_id and m.status == "pending"
    # Its message waits in the queue (a long queue, an offline device): not lost, however old; gone: sent again.
    Measurement.objects.filter(pk=m.pk).update(dispatched_at=timezone.now() - timedelta(hours=1))
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.rpush(device.queue, b"another message", json.dumps({"headers": {"id": m.task_id}}))
    try:
        assert services.do_reap_measurements()["redispatched"] == 0
    finally:
        broker.delete(device.queue)
    assert services.do_reap_measurements()["redispatched"] == 1


@pytest.mark.django_db
def test_stale_running_row_can_be_reclaimed_by_a_redelivered_task(sent, settings):
    device = Device.objects.create(name="edge-1")
    m = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    assert services.try_claim_measurement(m.pk, "w1")
    Measurement.objects.filter(pk=m.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S + 1)
    )
    assert services.try_claim_measurement(m.pk, "w2")
    m.refresh_from_db()
    assert m.claimed_by == "w2" and m.attempts == 2


@pytest.mark.django_db
def test_device_online_follows_heartbeat(settings):
    device = Device.objects.create(name="edge-1")
    assert not device.is_online
    device.last_heartbeat = timezone.now()
    assert device.is_online
    device.last_heartbeat = timezone.now() - timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S + 1)
    assert not device.is_online


@pytest.mark.django_db(transaction=True)
def test_profiling_worker_registers_its_device_and_measures_from_its_queue(start_worker, settings):
    name = "test-edge"
    worker = start_worker([f"profile.{name}"], env={"LTS_DEVICE": name, "LTS_HEARTBEAT_S": "1"})
    device = wait_for(lambda: Device.objects.filter(name=name).first(), 90, message=f"device {name} to register")
    assert device.hardware["cpu_cores_logical"] >= 1 and "torch" in device.backends
    first_beat = device.last_heartbeat
    wait_for(lambda: Device.objects.get(name=name).last_heartbeat > first_beat, 20, message="a heartbeat")

    request = services.do_request_measurement(TINY, device, SMALL_SETTINGS)
    m = wait_for(lambda: Measurement.objects.filter(pk=request.measurement.pk, status__in=["done", "failed"]).first(),
                 120, message="the measurement")
    assert m.status == "done", m.error + worker.output()[-3000:]
    assert m.latency_median_s > 0 and m.peak_memory_mb > 0 and m.latency_n >= 3
    assert m.claimed_by and m.attempts == 1
    assert m.details["device"]["cpu_cores_logical"] >= 1 and "torch" in m.details["versions"]
    assert m.details["host"]["wait_s"] == 0.2 and m.details["host"]["probes"] >= m.latency_n + 1
    # The same key again: served from the cache, nothing dispatched.
    again = services.do_request_measurement(TINY, Device.objects.get(name=name), SMALL_SETTINGS)
    assert again.cached and not again.dispatched and again.measurement.status == "done"


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_another_device_name_does_not_measure(start_worker):
    from workers.tasks import profile_measurement

    device = Device.objects.create(name="edge-a")
    m = services.do_request_measurement(TINY, device, SMALL_SETTINGS, dispatch=False).measurement
    worker = start_worker(["misrouted"], env={"LTS_DEVICE": "edge-b"})
    result = profile_measurement.apply_async(args=[m.pk], queue="misrouted")
    assert result.get(timeout=90) == "wrong-device", worker.output()[-2000:]
    m.refresh_from_db()
    assert m.status == "pending" and m.attempts == 0


def _run_profile_command(monkeypatch, lines: list[str], *args: str) -> list[dict]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    out = io.StringIO()
    call_command("lts_profile", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.django_db
def test_lts_profile_local_measures_reports_bad_lines_and_caches(monkeypatch):
    good = json.dumps(TINY.to_dict())
    args = ("--device", "laptop", "--local", "--seq-len", "32", "--host-wait", "0.2")
    first = _run_profile_command(monkeypatch, [good, "{not json", json.dumps({"n_layer": 1, "d_model": 33,
                                                                          "d_inner": 8, "n_head": 2})], *args)
    assert first[0]["valid"] and first[0]["status"] == "done" and first[0]["cached"] is False
    assert first[0]["archid"] == TINY.archid and first[0]["latency_s"]["median"] > 0
    assert first[0]["peak_memory_mb"] > 0 and first[0]["settings"]["seq_len"] == 32
    assert first[0]["host_check"]["wait_s"] == 0.2 and first[0]["host_check"]["probes"] >= 4
    assert first[1] == {"valid": False, "line": 2, "error": first[1]["error"]} and "not JSON" in first[1]["error"]
    assert first[2]["valid"] is False and "divisible" in first[2]["error"]
    second = _run_profile_command(monkeypatch, [good], *args)
    assert second[0]["cached"] is True and second[0]["latency_s"] == first[0]["latency_s"]
    assert Device.objects.get(name="laptop").hardware["ram_mb"] > 0


@pytest.mark.django_db
def test_lts_profile_refuses_a_negative_host_wait(monkeypatch):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="host_wait_s"):
        _run_profile_command(monkeypatch, ["{}"], "--device", "laptop", "--local", "--host-wait", "-1")


@pytest.mark.django_db
def test_lts_profile_refuses_numbers_beyond_the_limits_and_the_devices(monkeypatch, device):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="threads: must be at most 1,024, got 1,000,000"):
        _run_profile_command(monkeypatch, ["{}"], "--device", "edge-1", "--threads", "1000000")
    with pytest.raises(CommandError, match="batch_size: must be at most 1,048,576"):
        _run_profile_command(monkeypatch, ["{}"], "--device", "edge-1", "--batch-size", str(10**12))
    with pytest.raises(CommandError, match=r"threads: at most 2 \(the cores of device 'edge-1'\)"):
        _run_profile_command(monkeypatch, ["{}"], "--device", "edge-1", "--threads", "3")
    device.hardware = {**device.hardware, "ram_mb": 64}
    device.save()
    big = json.dumps({"n_layer": 1, "d_model": 4096, "d_inner": 64, "n_head": 2})  # 50257 x 4096 float32: 785 MB
    lines = _run_profile_command(monkeypatch, [big], "--device", "edge-1", "--seq-len", "32")
    assert lines[0]["valid"] is False and "more than the 64 MB of memory of device 'edge-1'" in lines[0]["error"]
    assert not Measurement.objects.exists()


@pytest.mark.django_db
def test_lts_profile_names_a_missing_device_and_how_to_start_it(monkeypatch):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="LTS_DEVICE=nowhere celery -A lts_web worker -Q profile.nowhere"):
        _run_profile_command(monkeypatch, ["{}"], "--device", "nowhere")


@pytest.mark.django_db
def test_the_fast_serializer_gives_what_drfs_fields_give(sent, device):
    """MeasurementSerializer builds its dict directly; it must stay what the declared fields would render."""
    from rest_framework import serializers as drf

    from searches.serializers import MeasurementSerializer

    class Generic(drf.ModelSerializer):
        device = drf.CharField(source="device.name", read_only=True)

        class Meta:
            model = Measurement
            fields = MeasurementSerializer.Meta.fields

    done = services.do_request_measurement(Architecture(2, 64, 128, 2), device, ProfileSettings()).measurement
    Measurement.objects.filter(pk=done.pk).update(status="done", latency_median_s=0.01, peak_memory_mb=12.5,
                                                  started_at=timezone.now(), finished_at=timezone.now(),
                                                  details={"device": {"cpu": "x"}}, param_bytes=2**40)
    pending = services.do_request_measurement(Architecture(1, 64, 128, 2), device, ProfileSettings()).measurement
    rows = list(Measurement.objects.select_related("device").filter(pk__in=[done.pk, pending.pk]).order_by("pk"))
    assert MeasurementSerializer(rows, many=True).data == Generic(rows, many=True).data
