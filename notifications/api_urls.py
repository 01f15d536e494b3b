"""API routes of webhooks (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from notifications import api

router = DefaultRouter()
router.register("webhooks", api.WebhookViewSet, basename="webhook")

urlpatterns = [path("", include(router.urls))]
