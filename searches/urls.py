"""API routes of searches (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path

from lts_web.routers import Router
from searches import api

router = Router()
router.register("searches", api.SearchJobViewSet, basename="search")
router.register("candidates", api.CandidateViewSet, basename="candidate")
router.register("measurements", api.MeasurementViewSet, basename="measurement")
router.register("devices", api.DeviceViewSet, basename="device")

urlpatterns = [
    path("presets/", api.PresetsView.as_view(), name="api-presets"),
    path("architectures/preview/", api.ArchitecturePreviewView.as_view(), name="api-architecture-preview"),
    path("spaces/preview/", api.SpacePreviewView.as_view(), name="api-space-preview"),
    path("", include(router.urls)),
]
