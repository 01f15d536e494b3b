"""Sending work to the workers: the one module that talks to Celery on behalf of the services.

Services enqueue a task by its name (the constants below) and never import a task or the Celery app, so sending work
loads neither torch nor the worker modules, and no service depends on a worker (workers depend on services). Tests
replace :func:`publish` to record or run what would be sent.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from lts_web.celery import app

__all__ = [
    "ADVANCE_SEARCH",
    "DELIVER_WEBHOOK",
    "GENERATE_TEXT",
    "IMPORT_HUB_MODEL",
    "PING",
    "PROFILE_MEASUREMENT",
    "REAP_DELIVERIES",
    "REAP_PROXY_CHECKS",
    "REAP_STALE_WORK",
    "REAP_TRAINING",
    "REFIT_COST_MODEL",
    "TASK_NAMES",
    "TRAIN_MODEL",
    "UPDATE_PROXY_CHECK",
    "broker_client",
    "publish",
    "queue_lengths",
    "revoke",
    "send",
]

logger = logging.getLogger(__name__)

# Task names, as registered by the modules of CELERY_IMPORTS (tests/lts_web/test_queueing.py checks each one).
PING = "workers.tasks.ping"
ADVANCE_SEARCH = "workers.tasks.advance_search"
PROFILE_MEASUREMENT = "workers.tasks.profile_measurement"
REFIT_COST_MODEL = "workers.tasks.refit_cost_model"
REAP_STALE_WORK = "workers.tasks.reap_stale_work"
TRAIN_MODEL = "workers.training.train_model"
REAP_TRAINING = "workers.training.reap_training"
IMPORT_HUB_MODEL = "workers.training.import_hub_model"
GENERATE_TEXT = "workers.generation.generate_text"
UPDATE_PROXY_CHECK = "workers.proxy_checks.update_proxy_check"
REAP_PROXY_CHECKS = "workers.proxy_checks.reap_proxy_checks"
DELIVER_WEBHOOK = "workers.notifications.deliver_webhook"
REAP_DELIVERIES = "workers.notifications.reap_deliveries"
TASK_NAMES = (PING, ADVANCE_SEARCH, PROFILE_MEASUREMENT, REFIT_COST_MODEL, REAP_STALE_WORK, TRAIN_MODEL, REAP_TRAINING,
              IMPORT_HUB_MODEL, GENERATE_TEXT, UPDATE_PROXY_CHECK, REAP_PROXY_CHECKS, DELIVER_WEBHOOK, REAP_DELIVERIES)

# kombu's Redis transport keeps one list per priority step: the queue's name, then these suffixes.
PRIORITY_SUFFIXES = ["", "\x06\x163", "\x06\x166", "\x06\x169"]


def publish(name: str, args: Sequence[Any] = (), **options: Any) -> None:
    """Send one message now: ``options`` are Celery's (queue, task_id, expires, retry, ignore_result ...); a queue
    not given comes from CELERY_TASK_ROUTES."""
    app.send_task(name, args=list(args), **options)


def send(name: str, args: Sequence[Any] = (), *, on_commit: bool = True, best_effort: bool = False,
         **options: Any) -> None:
    """Send task ``name`` with ``args``; with ``on_commit`` (the default) once the current transaction commits, so a
    worker never looks for a row that is not there yet (at once outside a transaction).

    ``best_effort`` is for derived results that something else recomputes (a cost-model fit, a proxy check's
    result): a broker that cannot be reached (``lts_train --local`` without one) is logged, not raised, and the
    message is not retried."""
    def go() -> None:
        if not best_effort:
            publish(name, args, **options)
            return
        try:
            publish(name, args, retry=False, **options)
        except Exception:  # noqa: BLE001  (kombu's connection errors vary by transport)
            logger.warning("could not queue %s %s", name, list(args), exc_info=True)

    if on_commit:
        transaction.on_commit(go)
    else:
        go()


def revoke(task_id: str, *, terminate: bool = False, on_commit: bool = True) -> None:
    """Ask the workers to drop (``terminate``: also to kill, if already running) the task with this id."""
    if on_commit:
        transaction.on_commit(lambda: app.control.revoke(task_id, terminate=terminate))
    else:
        app.control.revoke(task_id, terminate=terminate)


def broker_client() -> redis.Redis:
    """A short-lived client of the broker (1 s timeouts: a page that shows queue lengths must not hang on it)."""
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)


def queue_lengths(queues: Sequence[str]) -> dict[str, int | None]:
    """Messages waiting in each named queue; None for every queue when the broker cannot be asked."""
    try:
        client = broker_client()
        pipe = client.pipeline()
        for queue in queues:
            for suffix in PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        counts = pipe.execute()
        client.close()
    except redis.RedisError:
        return {queue: None for queue in queues}
    n = len(PRIORITY_SUFFIXES)
    return {queue: sum(counts[i * n:(i + 1) * n]) for i, queue in enumerate(queues)}
