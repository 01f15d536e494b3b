"""Pages of proxy checks (included under /proxy-checks/)."""
from __future__ import annotations

from django.urls import path

from models_zoo.proxy_checks import views

urlpatterns = [
    path("", views.check_list, name="proxy-checks"),
    path("<int:pk>/", views.check_detail, name="proxy-check"),
    path("<int:pk>/cancel/", views.check_cancel, name="proxy-check-cancel"),
    path("<int:pk>/delete/", views.check_delete, name="proxy-check-delete"),
]
