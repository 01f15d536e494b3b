"""The apps' API routers."""
from __future__ import annotations

from rest_framework.routers import DefaultRouter

__all__ = ["Router"]


class Router(DefaultRouter):
    """DefaultRouter (its `.json` format suffixes included) without a root view of its own: each app's router would
    add one at /api/v1/ listing only its own collections. The API's one root is lts_web.api.ApiRootView."""

    include_root_view = False
