"""Celery tasks of the notifications: deliver_webhook, and beat's reap_deliveries (queue "control").

Thin (STYLE.md): one attempt through notifications.services.do_deliver, which logs it on the Delivery row. The retry
policy is declared here: an attempt that may pass later (timeout, refused connection, 408/425/429/5xx, a name that did
not resolve) is tried again after Celery's exponential back-off with full jitter (LTS_WEBHOOK_BACKOFF_S, doubling, at
most LTS_WEBHOOK_BACKOFF_MAX_S), LTS_WEBHOOK_MAX_ATTEMPTS attempts in all; the service marks the last one failed.
"""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from notifications import services
from notifications.core import DeliveryError

__all__ = ["deliver_webhook", "reap_deliveries"]


@shared_task(name="workers.notifications.deliver_webhook", acks_late=True,
             autoretry_for=(DeliveryError, OperationalError, InterfaceError), retry_backoff=settings.LTS_WEBHOOK_BACKOFF_S,
             retry_backoff_max=settings.LTS_WEBHOOK_BACKOFF_MAX_S, retry_jitter=True,
             max_retries=settings.LTS_WEBHOOK_MAX_ATTEMPTS - 1)
def deliver_webhook(delivery_id: int, requeues: int = 0) -> str:
    """One attempt at one delivery; a missing, finished or claimed delivery, or a message a re-send superseded, is a
    no-op ("gone")."""
    close_old_connections()
    return services.do_deliver(delivery_id, requeues)


@shared_task(name="workers.notifications.reap_deliveries")
def reap_deliveries() -> dict:
    """Periodic (beat, LTS_REAPER_INTERVAL_S): send again the deliveries whose message (or retry, from when it was
    due) no worker took within LTS_WEBHOOK_RESEND_AFTER_S, or whose attempt's worker died; fail them after
    LTS_WEBHOOK_MAX_RESENDS re-sends."""
    close_old_connections()
    return services.do_reap_deliveries()
