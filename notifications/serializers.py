"""REST serializers of webhooks: parse; notifications.services checks and writes."""
from __future__ import annotations

from rest_framework import serializers

from lts_web.fields import IdField
from lts_web.serializers import RefuseUnknownFields
from notifications.core import EVENTS, MAX_EVENTS, MAX_SECRET_LENGTH, MAX_URL_LENGTH, MIN_SECRET_LENGTH
from notifications.models import Delivery, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    signed = serializers.SerializerMethodField(help_text="a secret is set: every body carries the signature header")

    class Meta:
        model = Webhook
        fields = ["id", "team", "team_name", "owner", "url", "events", "signed", "created_at"]
        read_only_fields = fields

    def get_signed(self, webhook: Webhook) -> bool:
        return bool(webhook.secret)


class WebhookCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    """Types only: notifications.services.do_create_webhook checks every field at once (the URL's addresses too)."""

    team = IdField(help_text="a team of yours")
    url = serializers.CharField(trim_whitespace=False,
                                help_text=f"http:// or https://, at most {MAX_URL_LENGTH} characters, a public host")
    secret = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="",
                                   help_text=f"{MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters; signs every "
                                             "body (HMAC-SHA256, header X-LTS-Signature); never shown again")
    events = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=True,
                                   help_text=f"1 to {MAX_EVENTS} of {', '.join(EVENTS)}; default: all")


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "event", "event_id", "status", "attempts", "response_code", "error", "duration_ms",
                  "created_at", "last_attempt_at", "finished_at", "payload"]
        read_only_fields = fields
