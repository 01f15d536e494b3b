"""API routes of proxy checks (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path

from lts_web.routers import Router
from models_zoo.proxy_checks import api

router = Router()
router.register("proxy-checks", api.ProxyCheckViewSet, basename="proxy-check")

urlpatterns = [path("", include(router.urls))]
