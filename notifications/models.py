"""A team's webhooks and the log of their deliveries."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from notifications.core import MAX_SECRET_LENGTH, MAX_URL_LENGTH


class Webhook(models.Model):
    """A receiver of a team's events: where (``url``), which (``events``), and the key that signs them."""

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="webhooks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=MAX_URL_LENGTH)
    # Kept as given: signing needs the key itself (never shown again, never in the API's answers).
    secret = models.CharField(max_length=MAX_SECRET_LENGTH, blank=True)
    events = models.JSONField()  # a list of notifications.core.EVENTS
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "created_at"]
        indexes = [models.Index(fields=["team", "created_at"], name="webhook_team_created")]

    def __str__(self) -> str:
        return f"webhook #{self.pk} of {self.team_id}: {self.url}"


class Delivery(models.Model):
    """One event sent (or being sent) to one webhook: its body, how each attempt went, the outcome."""

    class Status(models.TextChoices):
        PENDING = "pending"  # queued, not tried yet
        RETRYING = "retrying"  # an attempt failed for a reason that may pass; another is scheduled
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # refused, or the last attempt failed

    OPEN = (Status.PENDING, Status.RETRYING)

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    event_id = models.UUIDField()  # the same in every webhook's copy and every attempt: receivers dedupe on it
    payload = models.JSONField()  # the JSON body, as sent
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)  # of the last attempt, when there was one
    error = models.CharField(max_length=1000, blank=True)  # of the last attempt
    duration_ms = models.FloatField(null=True, blank=True)  # of the last attempt
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The message: when it was last sent (retrying: when its retry is due at the latest, after the back-off), and how
    # often the reaper sent it again (a broker that could not be reached, a lost message or retry, a worker that died
    # in an attempt). A message carries the ``requeues`` it was sent with and is ignored once the reaper sent a newer
    # one, so that at most one message per delivery is live.
    queued_at = models.DateTimeField(default=timezone.now)
    requeues = models.PositiveIntegerField(default=0)
    # Set while an attempt runs (its start): the claim that keeps a second message from posting the same delivery.
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # the delivery log: a webhook's newest first (the API, the team page and the pruning read it so)
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created"),
            # the reaper's pass: the open deliveries only
            models.Index(fields=["queued_at"], name="delivery_open_queued",
                         condition=models.Q(status__in=["pending", "retrying"])),
        ]

    def __str__(self) -> str:
        return f"{self.event} to webhook #{self.webhook_id}: {self.status}"
