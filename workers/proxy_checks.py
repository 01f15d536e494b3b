"""Celery tasks of proxy checks (queue "control"): a check's status and result are computed when one of its runs
finishes (models_zoo.services sends update_proxy_check once that commits), and a periodic pass catches a check whose
last message was lost. Thin: the work is models_zoo.proxy_checks.services'."""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, close_old_connections

from models_zoo.proxy_checks import services

__all__ = ["reap_proxy_checks", "update_proxy_check"]

logger = logging.getLogger(__name__)
# Transient database trouble is retried; the update is idempotent (recomputed from the runs).
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="workers.proxy_checks.update_proxy_check", autoretry_for=_TRANSIENT, retry_backoff=1,
             retry_backoff_max=60, retry_jitter=True, max_retries=8)
def update_proxy_check(check_id: int) -> str:
    """Bring one check's status and result in line with its runs; "missing" when it was deleted meanwhile."""
    close_old_connections()
    check = services.do_update_proxy_check(check_id)
    if check is None:
        logger.warning("proxy check %s no longer exists", check_id)
        return "missing"
    return check.status


@shared_task(name="workers.proxy_checks.reap_proxy_checks")
def reap_proxy_checks() -> int:
    """Periodic (beat, LTS_REAPER_INTERVAL_S): checks still running whose runs have all finished are updated (their
    last update message was lost). Returns how many."""
    close_old_connections()
    return services.do_reap_proxy_checks()
