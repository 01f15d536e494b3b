from __future__ import annotations

from django.contrib import admin

from models_zoo.models import Dataset, TrainingRun, ZooModel


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "owner", "kind", "path", "hub_name", "size_bytes", "created_at")
    list_filter = ("kind", "team")
    search_fields = ("name", "path", "hub_name")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "owner", "status", "step", "total_steps", "val_ppl", "attempts", "created_at")
    list_filter = ("status", "team")
    search_fields = ("name", "archid", "trained_archid")
    readonly_fields = ("history",)


@admin.register(ZooModel)
class ZooModelAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "owner", "source", "archid", "non_embedding_params", "val_ppl", "created_at")
    list_filter = ("source", "team")
    search_fields = ("name", "archid", "origin")
