"""A broker that lost its data (a Redis restarted without persistence) loses every queued message (seen once: 8
measurement messages lost, the search idle for 10 minutes). The reapers notice at their next pass and send again
what waited, through the dispatch-once machinery, and the claim keeps a duplicate from measuring anything twice."""
from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from kombu import Connection

import workers.tasks
import workers.training
from lts_web import queueing
from lts_web.celery import app
from models_zoo import services as zoo_services
from models_zoo.models import TrainingRun
from searches import services
from searches.core.arch import Architecture
from searches.core.profiling import ProfileResult, ProfileSettings
from searches.core.profiling.stats import LatencyStats
from searches.models import Device, SearchJob
from searches.queues import broker_lost_data, messages_in_broker
from tests.searches.factories import spec
from workers.embedded_redis import EmbeddedRedis
from workers.tasks import profile_measurement, reap_stale_work
from workers.training import reap_training

pytestmark = pytest.mark.django_db

TINY = Architecture(n_layer=1, d_model=32, d_inner=64, n_head=2, vocab_size=256, max_sequence_length=64)
SMALL_SETTINGS = ProfileSettings(seq_len=32, max_seconds=0.3, max_repeats=5, host_wait_s=0.2)


@pytest.fixture
def broker(settings, monkeypatch):
    """A broker of this test's own, which it can restart: task messages are really published to it (at once: the
    test's transaction never commits); search steps are recorded, not sent."""
    server = EmbeddedRedis().start()
    settings.CELERY_BROKER_URL = server.url
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    for module in (workers.tasks, workers.training):  # the test's connection holds its transaction: keep it
        monkeypatch.setattr(module, "close_old_connections", lambda: None)
    # Every task these tests send publishes on an explicit connection: a send through the app's producer pool would
    # make that pool on this broker, and the pool outlives the settings override (later tests: connection refused).
    kicked: list[int] = []

    def publish(name, args=(), **options):
        if name == queueing.ADVANCE_SEARCH:
            kicked.append(args[0])
            return
        with Connection(settings.CELERY_BROKER_URL) as connection:
            app.send_task(name, args=list(args), connection=connection, **options)

    monkeypatch.setattr(queueing, "publish", publish)

    def restart() -> None:
        nonlocal server
        server.stop()  # without persistence, as the embedded broker of `make run` always is
        server = EmbeddedRedis(port=server.port).start()

    yield type("Broker", (), {"restart": staticmethod(restart), "kicked": kicked})
    server.stop()


def _queued_run(actors) -> TrainingRun:
    run = TrainingRun.objects.create(team=actors.acme, owner=actors.alice, name="r", architecture=TINY.to_dict(),
                                     archid=TINY.archid, tokenizer="bpe:400", config={"max_steps": 30})
    zoo_services.training._dispatch_training(run.pk)
    run.refresh_from_db()
    return run


def test_a_broker_restart_is_healed_at_the_next_reaper_pass_and_only_then(broker, actors, device):
    measurement = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    run = _queued_run(actors)
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="s", spec=spec())
    SearchJob.objects.filter(pk=job.pk).update(status="running", advanced_at=timezone.now())
    before = {measurement.task_id, run.task_id}
    assert messages_in_broker(before, [device.queue, "train"], taken=True) == before

    reap_stale_work(), reap_training()  # the first passes on a new broker: every message is where it should be
    broker.kicked.clear()
    assert reap_stale_work() == {"requeued": 0, "failed": 0, "redispatched": 0, "searches_kicked": 0}
    assert reap_training()["redispatched"] == 0

    broker.restart()
    assert messages_in_broker(before, [device.queue, "train"], taken=True) == set()
    # One pass each, long before LTS_PENDING_REDISPATCH_S (600 s) and LTS_JOB_STALL_S (60 s).
    assert reap_stale_work() == {"requeued": 0, "failed": 0, "redispatched": 1, "searches_kicked": 1}
    assert reap_training()["redispatched"] == 1
    assert broker.kicked == [job.pk]
    measurement.refresh_from_db(), run.refresh_from_db()
    assert measurement.status == "pending" and run.status == "queued"
    after = {measurement.task_id, run.task_id}
    assert not after & before and messages_in_broker(after, [device.queue, "train"], taken=False) == after

    broker.kicked.clear()  # the next passes find everything in place again
    assert reap_stale_work() == {"requeued": 0, "failed": 0, "redispatched": 0, "searches_kicked": 0}
    assert reap_training()["redispatched"] == 0


def test_each_reaper_learns_of_a_lost_broker_once(broker):
    assert broker_lost_data("a") and broker_lost_data("b")  # a new broker looks like a wiped one
    assert not broker_lost_data("a") and not broker_lost_data("b")
    broker.restart()
    assert broker_lost_data("a") and not broker_lost_data("a")
    assert broker_lost_data("b")


def test_a_duplicate_message_measures_nothing_twice(broker, settings, monkeypatch):
    """The message that was thought lost arrives after all, beside its re-sent twin: while the first measures and
    after it finished, the other finds the claim taken."""
    device = Device.objects.create(name=settings.LTS_DEVICE, last_heartbeat=timezone.now())
    measurement = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    measured: list[int] = []

    def profile(arch, profile_settings, timeout_s):
        measured.append(arch.archid)
        assert profile_measurement.apply(args=[measurement.pk]).get() == "already-claimed"
        latency = LatencyStats(median=1e-3, min=1e-3, p10=1e-3, p90=1e-3, mean=1e-3, std=0.0, n=3, ci95=0.01,
                               stopped_by="max_repeats")
        return ProfileResult(archid=arch.archid, arch=arch.to_dict(), settings={}, latency=latency,
                             peak_memory_mb=1.0, memory_method="vmhwm", param_bytes=4, onnx_file_bytes=None,
                             device={}, versions={}, wall_time_s=0.1)

    monkeypatch.setattr(workers.tasks, "profile", profile)
    assert profile_measurement.apply(args=[measurement.pk]).get() == "done"
    assert profile_measurement.apply(args=[measurement.pk]).get() == "already-claimed"
    measurement.refresh_from_db()
    assert measured == [TINY.archid] and measurement.status == "done" and measurement.attempts == 1


def _take_from_queue(queue: str, url: str) -> None:
    """What a worker does before it dies: the message leaves the queue for the unacknowledged set (kombu's Redis
    transport keeps it there until the visibility timeout, 13 h here)."""
    import redis

    client = redis.Redis.from_url(url)
    raw = client.rpop(queue)
    assert raw is not None
    client.hset("unacked", "delivery-tag-of-the-dead-worker", b"[" + raw + b', "", "' + queue.encode() + b'"]')


def test_a_message_taken_by_a_worker_that_died_before_claiming_is_sent_again_when_the_worker_restarts(
        broker, device, settings):
    """kill -9 of a profiling worker between taking a message and claiming its row (seen in a fresh-clone check: the
    search stalled 10 minutes, until LTS_PENDING_REDISPATCH_S). Its restart re-registers the device."""
    from workers.devices import register_device

    measurement = services.do_request_measurement(TINY, device, SMALL_SETTINGS).measurement
    reap_stale_work()  # the first pass on a new broker
    _take_from_queue(device.queue, settings.CELERY_BROKER_URL)
    assert reap_stale_work()["redispatched"] == 0  # the worker that took it may be about to claim it

    register_device(device.name)  # the worker came back (worker_ready)
    assert reap_stale_work()["redispatched"] == 1
    measurement.refresh_from_db()
    assert measurement.status == "pending"
    assert messages_in_broker({measurement.task_id}, [device.queue], taken=False) == {measurement.task_id}
    assert reap_stale_work()["redispatched"] == 0  # sent after the restart: no longer a suspect
