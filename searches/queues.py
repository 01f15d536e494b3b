"""What waits in the broker: the length of named queues (a device's profiling queue, `train`)."""
from __future__ import annotations

import redis
from django.conf import settings

from searches.models import Device

__all__ = ["queue_lengths", "queue_lengths_by_name"]

# kombu's Redis transport keeps one list per priority step: the queue's name, then these suffixes.
_PRIORITY_SUFFIXES = ["", "\x06\x163", "\x06\x166", "\x06\x169"]


def queue_lengths_by_name(queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each named queue; None for every queue when the broker cannot be asked."""
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        pipe = client.pipeline()
        for queue in queues:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        counts = pipe.execute()
        client.close()
    except redis.RedisError:
        return {queue: None for queue in queues}
    n = len(_PRIORITY_SUFFIXES)
    return {queue: sum(counts[i * n:(i + 1) * n]) for i, queue in enumerate(queues)}


def queue_lengths(devices: list[Device]) -> dict[str, int | None]:
    """Messages waiting in each device's profiling queue."""
    return queue_lengths_by_name([d.queue for d in devices])
