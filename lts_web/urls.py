from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from lts_web import api, views
from lts_web.routers import Router
from searches import views as search_views

router = Router()
router.register("teams", api.TeamViewSet, basename="team")

api_v1 = [
    path("", api.ApiRootView.as_view(), name="api-root"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("auth/token/", api.ObtainTokenView.as_view(), name="api-token"),
    path("auth/logout/", api.LogoutView.as_view(), name="api-logout"),
    path("auth/logoutall/", api.LogoutAllView.as_view(), name="api-logout-all"),
    path("", include("searches.urls")),
    path("", include("models_zoo.api_urls")),
    path("", include("models_zoo.proxy_checks.api_urls")),
    path("", include("notifications.api_urls")),
    path("", include(router.urls)),
]

urlpatterns = [
    path("", search_views.dashboard, name="home"),
    path("searches/", search_views.dashboard, name="search-list"),
    path("searches/new/", search_views.new_search, name="search-new"),
    path("searches/<int:pk>/", search_views.search_detail, name="search-page"),
    path("searches/<int:pk>/candidates/<str:archid>/", search_views.candidate_detail, name="candidate-page"),
    path("devices/", search_views.devices, name="devices"),
    path("devices/<str:name>/", search_views.device_detail, name="device-page"),
    path("zoo/", include("models_zoo.urls")),
    path("proxy-checks/", include("models_zoo.proxy_checks.urls")),
    path("teams/", views.teams, name="teams"),
    path("teams/<int:pk>/webhooks/", include("notifications.urls")),
    path("account/", views.account, name="account"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # The schema and its documentation pages are public: they describe the API, they expose no data. Both pages load
    # drf-spectacular-sidecar's copies of their bundles from /static/; Swagger UI's set-up script is a request of its
    # own (the split view) and Redoc's template has no fonts from elsewhere, so both run under the CSP.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema", permission_classes=[AllowAny],
                                                    template_name="lts_web/redoc.html"), name="api-redoc"),
]

handler404 = "lts_web.views.page_not_found"
