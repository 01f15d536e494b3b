"""Reachability of the two shared dependencies: the database and the Celery broker (Redis)."""
from __future__ import annotations

import redis
from django.conf import settings
from django.db import connections

__all__ = ["check_broker", "check_database"]


def check_database() -> str | None:
    """None when a query round-trips, else the reason."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "unreachable" to a health probe
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def check_broker() -> str | None:
    """None when the broker answers PING within LTS_HEALTH_TIMEOUT_S, else the reason."""
    timeout = settings.LTS_HEALTH_TIMEOUT_S
    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # connection refused, timeout, auth, DNS: all "unreachable"
        return f"{type(exc).__name__}: {exc}".strip()
    return None
