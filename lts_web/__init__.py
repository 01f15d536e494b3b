"""LTS Studio web project: settings, URLs and the Celery app wiring."""
from __future__ import annotations

from lts_web.celery import app as celery_app

__all__ = ["celery_app"]
