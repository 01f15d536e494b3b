from __future__ import annotations

from django.contrib import admin

from models_zoo.proxy_checks.models import ProxyCheck


@admin.register(ProxyCheck)
class ProxyCheckAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "owner", "status", "sample_size", "budgets", "created_at")
    list_filter = ("status", "team")
    search_fields = ("name",)
    readonly_fields = ("result", "sample")
