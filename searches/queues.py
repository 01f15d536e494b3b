"""What waits in the broker, for the reapers and the device pages: the length of each device's profiling queue
(lts_web.queueing counts any named queue), which task messages are still there, and whether the broker lost its data
since a reaper last looked."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from lts_web import queueing
from searches.models import Device

__all__ = ["broker_lost_data", "messages_in_broker", "queue_lengths", "resend_lost"]

logger = logging.getLogger(__name__)

# A hash of the messages workers took and have not acknowledged yet (acks_late: until the task ends).
_UNACKED = "unacked"
_MARK = "lts:broker-mark:{}"


def queue_lengths(devices: list[Device]) -> dict[str, int | None]:
    """Messages waiting in each device's profiling queue."""
    return queueing.queue_lengths([d.queue for d in devices])


def _task_id(raw: bytes, *, taken: bool) -> str | None:
    try:
        message = json.loads(raw)
        if taken:  # kombu stores [message, exchange, routing key]
            message = message[0]
        return message["headers"]["id"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None  # not a Celery task message (protocol 2): nothing of ours


def messages_in_broker(task_ids: Iterable[str], queues: Iterable[str], *, taken: bool) -> set[str] | None:
    """Which of these task ids have a message waiting in one of ``queues``, or with ``taken`` also in a worker's
    hands (delivered, not yet acknowledged). None when the broker cannot be asked.

    One MULTI transaction reads the queues and the unacknowledged messages together, so a message that moves from
    its queue to a worker meanwhile is seen in one place or the other. Reads every message of those queues: a
    reaper asks only about rows it already suspects (a thousand waiting messages are about 1 MB)."""
    try:
        client = queueing.broker_client()
        pipe = client.pipeline(transaction=True)
        for queue in sorted(set(queues)):
            for suffix in queueing.PRIORITY_SUFFIXES:
                pipe.lrange(queue + suffix, 0, -1)
        if taken:
            pipe.hvals(_UNACKED)
        replies = pipe.execute()
        client.close()
    except redis.RedisError:
        return None
    last = len(replies) - 1
    found = {_task_id(raw, taken=taken and i == last) for i, reply in enumerate(replies) for raw in reply}
    return found & set(task_ids)


def broker_lost_data(reader: str) -> bool:
    """True once after the broker lost its keys, and with them every queued message: a Redis restarted without
    persistence (the embedded one of `make run` always is), flushed, or failed over to an empty replica. A restart
    that kept its data (AOF, RDB) lost nothing and is not reported.

    Each reader (a reaper) keeps its own mark in the broker and learns of a loss once, at its first pass after the
    broker came back. A new broker looks like a wiped one: the reader's first pass ever answers True, which costs one
    check of the waiting rows' messages. False when the broker cannot be asked (the next pass asks again)."""
    try:
        client = queueing.broker_client()
        lost = client.set(_MARK.format(reader), "1", nx=True)
        client.close()
    except redis.RedisError:
        return False
    return bool(lost)


def resend_lost(waiting: QuerySet, queue_of: Callable[[Any], str], dispatch: Callable[[Any], None], *,
                broker_lost: bool, suspect_now: Q | None = None) -> int:
    """Rows of ``waiting`` (dispatched, not yet claimed: pending measurements, queued training runs) whose task
    message is gone get a new one, through their dispatch-once machinery: the old task_id is cleared by a conditional
    UPDATE (one reaper wins), then ``dispatch`` sends one message. A message that was only late finds the row claimed
    or finished (the claim is a conditional UPDATE too): nothing runs twice. Returns how many were sent again.

    After the broker lost its data (``broker_lost``, from broker_lost_data) every row is checked, at once, and a
    message in a worker's hands counts as there; otherwise only rows unclaimed for LTS_PENDING_REDISPATCH_S, whose
    message no longer waits in its queue (lost alone, or taken by a worker that died before claiming it: kombu gives
    that one back only after its visibility timeout, LTS_MAX_TASK_SECONDS + 1 h). Rows matching ``suspect_now`` are
    checked at once, however young: e.g. a measurement sent before its device's worker (re)started, whose message the
    dead worker may have taken to its grave.
    """
    rows = waiting.exclude(task_id="")
    if not broker_lost:
        old = Q(dispatched_at__lt=timezone.now() - timedelta(seconds=settings.LTS_PENDING_REDISPATCH_S))
        rows = rows.filter(old | suspect_now if suspect_now is not None else old)
    suspects = list(rows[:1000])
    if not suspects:
        return 0
    present = messages_in_broker([row.task_id for row in suspects], [queue_of(row) for row in suspects],
                                 taken=broker_lost)
    if present is None:  # the broker cannot be asked: the next pass will
        return 0
    resent = 0
    for row in suspects:
        if row.task_id not in present and waiting.filter(pk=row.pk, task_id=row.task_id).update(task_id=""):
            with transaction.atomic():
                dispatch(row)
            resent += 1
            logger.warning("re-sent %s %s: its message was gone%s", waiting.model._meta.verbose_name, row.pk,
                           " (the broker lost its data)" if broker_lost else "")
    return resent
