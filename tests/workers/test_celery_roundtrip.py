from __future__ import annotations

import uuid

from lts_web.celery import app
from workers.tasks import ping


def test_ping_round_trip_through_real_broker_and_worker(start_worker):
    queue = f"test-{uuid.uuid4().hex[:8]}"  # private queue: a shared CI Redis may hold other work
    worker = start_worker([queue])
    result = ping.apply_async(args=["hello"], queue=queue)
    try:
        value = result.get(timeout=60)
    except Exception:
        print(worker.output())
        raise
    assert value["payload"] == "hello"
    assert value["hostname"]


def test_celery_configuration_is_durable():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    from django.conf import settings

    # Redis re-delivers an unacked task after the visibility timeout: it must outlast the longest task.
    assert conf.broker_transport_options["visibility_timeout"] > settings.LTS_MAX_TASK_SECONDS
    assert "workers.tasks.ping" in app.tasks
