"""What waits in the broker: the length of each device's profiling queue."""
from __future__ import annotations

import redis
from django.conf import settings

from searches.models import Device

__all__ = ["queue_lengths"]


def queue_lengths(devices: list[Device]) -> dict[str, int | None]:
    """Messages waiting in each device's queue (kombu's Redis transport keeps one list per priority step)."""
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        pipe = client.pipeline()
        suffixes = ["", "\x06\x163", "\x06\x166", "\x06\x169"]
        for device in devices:
            for suffix in suffixes:
                pipe.llen(device.queue + suffix)
        counts = pipe.execute()
        client.close()
    except redis.RedisError:
        return {d.queue: None for d in devices}
    return {d.queue: sum(counts[i * 4:(i + 1) * 4]) for i, d in enumerate(devices)}
