"""REST API of webhooks under /api/v1/webhooks/: a team's receivers of its events, and each one's delivery log."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response

from notifications import services
from notifications.models import Webhook
from notifications.serializers import DeliverySerializer, WebhookCreateSerializer, WebhookSerializer


class CanChangeWebhook(BasePermission):
    """Every member of the team sees its webhooks (other teams' are a 404); the member who added one or a team admin
    deletes it."""

    message = "only the member who added this webhook or an admin of its team may change it"

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in SAFE_METHODS or services.can_change_webhook(request.user, obj)


class WebhookViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Webhooks of your teams: each receives the events it chose (search.finished, search.failed, training.finished,
    training.failed, proxy_check.finished) as a Slack-compatible JSON POST (``text``: a summary and a link) with the
    structured payload beside it, signed with HMAC-SHA256 in ``X-LTS-Signature`` when it has a secret. Only public
    addresses may receive them."""

    serializer_class = WebhookSerializer
    queryset = Webhook.objects.none()  # for the schema; get_queryset scopes to the caller's teams
    permission_classes = [IsAuthenticated, CanChangeWebhook]
    filterset_fields = ["team"]

    def get_queryset(self):
        return services.visible_webhooks(self.request.user).select_related("team", "owner").order_by("team", "pk")

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookSerializer})
    def create(self, request, *args, **kwargs):
        serializer = WebhookCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # A ConfigError is a 400 with its field messages (lts_web.errors.exception_handler).
        webhook = services.do_create_webhook(owner=request.user, team_id=data["team"], url=data["url"],
                                             secret=data["secret"], events=data.get("events"))
        return Response(WebhookSerializer(self.get_queryset().get(pk=webhook.pk)).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Webhook) -> None:
        services.do_delete_webhook(instance)

    @extend_schema(responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The webhook's delivery log, newest first (its newest LTS_WEBHOOK_LOG_KEEP are kept): status, attempts,
        the last attempt's response code, error and duration, and the body sent."""
        rows = self.get_object().deliveries.order_by("-created_at", "-pk")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
