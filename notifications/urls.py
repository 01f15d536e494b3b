"""The webhooks page of a team (included under /teams/<pk>/webhooks/)."""
from __future__ import annotations

from django.urls import path

from notifications import views

urlpatterns = [
    path("", views.team_webhooks, name="team-webhooks"),
    path("<int:webhook_id>/delete/", views.webhook_delete, name="webhook-delete"),
]
