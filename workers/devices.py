"""Profiling workers register their device and keep it alive with heartbeats.

`LTS_DEVICE=NAME celery -A lts_web worker -Q profile.NAME --concurrency 1` is all it takes: when a worker that
consumes its device's queue is ready, it upserts the Device row (hardware, backends, hostname) and a daemon thread
refreshes last_heartbeat every LTS_HEARTBEAT_S seconds. A device silent for LTS_DEVICE_OFFLINE_AFTER_S shows offline.
"""
from __future__ import annotations

import logging
import socket

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from searches.models import Device
from workers.heartbeat import Heartbeat

logger = logging.getLogger(__name__)
_heartbeat: Heartbeat | None = None  # of this worker's device, from worker_ready to worker_shutdown


def register_device(name: str, worker_name: str = "") -> Device:
    from searches.core.profiling import available_backends, describe_device

    device, _ = Device.objects.update_or_create(
        name=name,
        defaults={
            "hostname": socket.gethostname(),
            "hardware": describe_device(),
            "backends": available_backends(),
            "worker_name": worker_name,
            "registered_at": timezone.now(),  # this worker's start: what was sent before may be lost with its last one
            "last_heartbeat": timezone.now(),
        },
    )
    return device


def _beat(name: str) -> None:
    close_old_connections()
    Device.objects.filter(name=name).update(last_heartbeat=timezone.now())


@worker_ready.connect
def _on_worker_ready(sender, **kwargs) -> None:
    name = settings.LTS_DEVICE
    queues = {queue.name for queue in sender.task_consumer.queues}
    if not any(q.startswith("profile.") for q in queues):
        return
    if f"profile.{name}" not in queues:
        logger.error("this worker consumes %s but LTS_DEVICE=%r: set LTS_DEVICE to the device name of its queue",
                     sorted(queues), name)
        return
    device = register_device(name, worker_name=sender.hostname)
    connection.close()
    logger.info("registered device %s (%s)", device.name, device.hardware.get("cpu_model", "?"))
    global _heartbeat
    _heartbeat = Heartbeat(lambda: _beat(name), settings.LTS_HEARTBEAT_S, name=f"heartbeat of device {name}").start()


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
