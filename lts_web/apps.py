from __future__ import annotations

from django.apps import AppConfig


class LtsWebConfig(AppConfig):
    name = "lts_web"
    verbose_name = "LTS Studio accounts and teams"
