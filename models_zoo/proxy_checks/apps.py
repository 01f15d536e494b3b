from __future__ import annotations

from django.apps import AppConfig


class ProxyChecksConfig(AppConfig):
    name = "models_zoo.proxy_checks"
    label = "proxy_checks"  # its tables and migrations keep the short name
    verbose_name = "Proxy checks"
