"""Queued work: a row that a task message carries to a worker (a measurement, a training run).

One mechanism for every kind (STYLE.md habit 14): dispatch once (the caller that sets an empty task_id sends the
message), claim with a conditional UPDATE and check the row count (habit 2, healthchecks' sendalerts), heartbeat
while running, and reap rows whose heartbeat stopped (habit 4). Every write is a conditional UPDATE on the state it
expects, so races between workers, reapers and users resolve in the database.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

__all__ = ["QueuedWork", "QueuedWorkQuerySet"]

logger = logging.getLogger(__name__)


class QueuedWorkQuerySet(models.QuerySet):
    """Dispatch, claim, heartbeat and reap for a QueuedWork model (its WAITING status and Status.RUNNING/FAILED)."""

    def dispatch_once(self, pk: int) -> str | None:
        """Win the right to send the task of a waiting row with no message yet: the new task id, or None when another
        caller already sent one (or the row is no longer waiting)."""
        task_id = str(uuid.uuid4())
        won = self.filter(pk=pk, status=self.model.WAITING, task_id="").update(task_id=task_id,
                                                                               dispatched_at=timezone.now())
        return task_id if won else None

    def claim(self, pk: int, worker: str, *, also: Q | None = None, max_attempts: int | None = None,
              where: Mapping[str, Any] | None = None, **values: Any) -> bool:
        """Conditional UPDATE: a waiting row, or a running one whose heartbeat is older than
        LTS_DEVICE_OFFLINE_AFTER_S (its worker is gone; with fewer than ``max_attempts`` claims when given), or a
        row matching ``also``; ``where`` narrows every case. Sets running, the claimant, attempts + 1, the heartbeat
        and ``values``. True when this worker got it."""
        now = timezone.now()
        stale = Q(status=self.model.Status.RUNNING, heartbeat_at__lt=now - _stale_after())
        if max_attempts is not None:
            stale &= Q(attempts__lt=max_attempts)
        claimable = Q(status=self.model.WAITING) | stale
        if also is not None:
            claimable |= also
        return bool(self.filter(claimable, pk=pk, **(where or {})).update(
            status=self.model.Status.RUNNING, claimed_by=worker, attempts=F("attempts") + 1, heartbeat_at=now,
            error="", **values))

    def claimed(self, pk: int, worker: str) -> QueuedWorkQuerySet:
        """The row, only while it runs under this worker's claim: every worker-side write goes through it."""
        return self.filter(pk=pk, status=self.model.Status.RUNNING, claimed_by=worker)

    def heartbeat(self, pk: int, worker: str) -> bool:
        """Refresh the heartbeat of a row this worker holds; False when the claim was lost."""
        return bool(self.claimed(pk, worker).update(heartbeat_at=timezone.now()))

    def fail(self, pk: int, worker: str | None, reason: str, *, unless: tuple[str, ...], **values: Any) -> bool:
        """Fail the row (unless its status is in ``unless``), only under this worker's claim when one is given."""
        rows = self.filter(pk=pk).exclude(status__in=unless)
        if worker is not None:
            rows = rows.filter(claimed_by=worker)
        return bool(rows.update(status=self.model.Status.FAILED, error=reason[:4000], finished_at=timezone.now(),
                                **values))

    def reap_stale(self, *, max_attempts: int, give_up: Callable[[Any], str], dispatch: Callable[[Any], None],
                   cancelled: Callable[[Any], bool] | None = None, ended: Callable[[Any], None] | None = None,
                   **columns: Any) -> dict[str, int]:
        """Running rows whose heartbeat stopped: cancelled when ``cancelled(row)`` (a cancel was pending), failed
        with ``give_up(row)`` after ``max_attempts`` claims, otherwise made waiting again and sent once more
        (``dispatch(row)``, which goes through dispatch_once). ``columns``: further columns set on a row that ends;
        ``ended(row)`` is called for each row this call ended (cancelled or failed).

        Tolerates races: each change is a conditional UPDATE on the stale state observed (status and heartbeat); a
        duplicate message is harmless because only one claim can win."""
        now = timezone.now()
        model = self.model
        counts = {"requeued": 0, "failed": 0, "cancelled": 0}
        for row in self.filter(status=model.Status.RUNNING, heartbeat_at__lt=now - _stale_after()):
            observed = model.objects.filter(pk=row.pk, status=model.Status.RUNNING, heartbeat_at=row.heartbeat_at)
            if cancelled is not None and cancelled(row):
                outcome = "cancelled"
                done = observed.update(status=model.Status.CANCELLED, finished_at=now, **columns)
            elif row.attempts >= max_attempts:
                outcome = "failed"
                done = observed.update(status=model.Status.FAILED, error=give_up(row), finished_at=now, **columns)
            else:
                if observed.update(status=model.WAITING, task_id=""):
                    counts["requeued"] += 1
                    with transaction.atomic():
                        dispatch(row)
                    logger.warning("re-queued %s %s after a silent worker (%s)", model._meta.verbose_name, row.pk,
                                   row.claimed_by)
                continue
            counts[outcome] += done
            if done and ended is not None:
                ended(row)
        return counts


def _stale_after() -> timedelta:
    """A running row whose heartbeat is this old lost its worker (3 missed beats by default)."""
    return timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S)


class QueuedWork(models.Model):
    """The columns of queued work. A subclass declares its Status (with RUNNING and FAILED), overrides ``status``
    with those choices, and names its waiting status in WAITING; ``objects`` is a QueuedWorkQuerySet."""

    WAITING: str = ""

    status = models.CharField(max_length=10)
    attempts = models.PositiveIntegerField(default=0)  # claims so far: bounds re-queues after dead workers
    claimed_by = models.CharField(max_length=255, blank=True)  # "host:task id" of the worker that holds it
    task_id = models.CharField(max_length=64, blank=True)  # of the message sent; empty until one is
    dispatched_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = QueuedWorkQuerySet.as_manager()

    class Meta:
        abstract = True
