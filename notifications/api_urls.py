"""API routes of webhooks (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path

from lts_web.routers import Router
from notifications import api

router = Router()
router.register("webhooks", api.WebhookViewSet, basename="webhook")

urlpatterns = [path("", include(router.urls))]
