"""The team page of webhooks: the team's receivers, a form to add one, and the delivery log."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from lts_web.models import is_team_admin, teams_of
from notifications import services
from notifications.forms import WebhookForm
from notifications.models import Delivery, Webhook
from searches.core.arch import ConfigError

# The page shows the team's newest deliveries; the API pages through a webhook's whole log.
PAGE_DELIVERIES = 50


@require_http_methods(["GET", "POST"])
def team_webhooks(request: HttpRequest, pk: int) -> HttpResponse:
    team = get_object_or_404(teams_of(request.user), pk=pk)
    if request.method == "POST":
        form = WebhookForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                webhook = services.do_create_webhook(owner=request.user, team_id=team.pk, url=data["url"],
                                                     secret=data["secret"], events=data["events"])
            except ConfigError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Added webhook #{webhook.pk}: {webhook.url}")
                return redirect("team-webhooks", pk=team.pk)
    else:
        form = WebhookForm()
    admin = is_team_admin(request.user, team.pk)
    webhooks = list(Webhook.objects.filter(team=team).select_related("owner").order_by("pk"))
    for webhook in webhooks:
        webhook.changeable = admin or webhook.owner_id == request.user.id
    deliveries = (Delivery.objects.filter(webhook__team=team)
                  .defer("payload").order_by("-created_at", "-pk")[:PAGE_DELIVERIES])
    return render(request, "notifications/webhooks.html",
                  {"team": team, "webhooks": webhooks, "deliveries": deliveries, "form": form,
                   "page_deliveries": PAGE_DELIVERIES},
                  status=400 if request.method == "POST" else 200)


@require_POST
def webhook_delete(request: HttpRequest, pk: int, webhook_id: int) -> HttpResponse:
    webhook = get_object_or_404(services.visible_webhooks(request.user), pk=webhook_id, team_id=pk)
    if not services.can_change_webhook(request.user, webhook):
        raise PermissionDenied("only the member who added this webhook or an admin of its team may delete it")
    services.do_delete_webhook(webhook)
    messages.success(request, f"Deleted webhook #{webhook_id}.")
    return redirect("team-webhooks", pk=pk)
