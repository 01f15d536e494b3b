"""Celery tasks. Thin: take primary keys, load, call the core, save (STYLE.md)."""
from __future__ import annotations

import platform
import socket

from celery import shared_task


@shared_task(name="workers.tasks.ping")
def ping(payload: str = "pong") -> dict:
    """A round trip through the broker and the result store; used by health tooling and tests."""
    return {"payload": payload, "hostname": socket.gethostname(), "python": platform.python_version()}
