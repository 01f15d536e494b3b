"""API routes of proxy checks (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from models_zoo.proxy_checks import api

router = DefaultRouter()
router.register("proxy-checks", api.ProxyCheckViewSet, basename="proxy-check")

urlpatterns = [path("", include(router.urls))]
