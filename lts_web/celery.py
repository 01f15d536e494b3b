"""The Celery application. Configuration lives in lts_web.settings under the CELERY_ namespace."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")

app = Celery("lts_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The task modules are settings.CELERY_IMPORTS (workers/*.py: thin tasks that call the services and the core).
