from __future__ import annotations

from django.apps import AppConfig


class ProxyChecksConfig(AppConfig):
    name = "proxy_checks"
    verbose_name = "Proxy checks"
