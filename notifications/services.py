"""Every state change of webhooks goes through a do_* function (STYLE.md); the finishing services call notify_*.

An event is registered in the transaction that finishes the work and handled after it commits (``on_commit``,
robust): nothing of it runs inside that transaction, and nothing of it can fail or slow the work. After the commit
the work's row is read, one Delivery row is written per subscribed webhook, and each is sent to a worker
(workers/notifications.py), which posts it with retries (Celery's back-off) and logs every attempt. One attempt at
a time holds a delivery (``claimed_at``); beat's do_reap_deliveries sends again a delivery whose message no worker
took (a broker that could not be reached, a first message or a retry lost) or whose attempt's worker died,
superseding the earlier message.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from lts_web import queueing
from lts_web.models import Membership, Team, is_team_admin
from models_zoo.models import TrainingRun
from models_zoo.proxy_checks.models import ProxyCheck
from notifications.core import (
    EVENTS,
    MAX_EVENTS,
    SIGNATURE_HEADER,
    DeliveryError,
    check_reachable,
    check_secret,
    post,
    sign,
)
from notifications.models import Delivery, Webhook
from searches.core.arch import ConfigError
from searches.models import SearchJob

__all__ = [
    "can_change_webhook",
    "do_create_webhook",
    "do_delete_webhook",
    "do_deliver",
    "do_reap_deliveries",
    "notify_proxy_check",
    "notify_search",
    "notify_training",
    "visible_webhooks",
]

logger = logging.getLogger(__name__)


# ---- webhooks -----------------------------------------------------------------------------------------------------

def visible_webhooks(user) -> QuerySet[Webhook]:
    """The webhooks of the user's teams (every member sees them; the secret is never shown)."""
    return Webhook.objects.filter(team__memberships__user=user)


def can_change_webhook(user, webhook: Webhook) -> bool:
    """As for searches: the member who added it, or an admin of its team."""
    return webhook.owner_id == user.id or is_team_admin(user, webhook.team_id)


def _event_errors(events: Any) -> tuple[list[str], str | None]:
    if events is None:
        return list(EVENTS), None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return [], f"a list of event names: {', '.join(EVENTS)}"
    if not 1 <= len(events) <= MAX_EVENTS:
        return [], f"give 1 to {MAX_EVENTS} events, got {len(events)}"
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        return [], f"unknown event {unknown[0][:60]!r}; the events are: {', '.join(EVENTS)}"
    return [e for e in EVENTS if e in events], None


def do_create_webhook(*, owner, team_id: int, url: str, secret: str = "", events: list[str] | None = None) -> Webhook:
    """A webhook of ``team_id`` (a team of ``owner``). Every field is checked before anything is written, all at
    once: ConfigError with messages for team, url (syntax, and every address its host resolves to now), secret and
    events (None: all of them). At most LTS_WEBHOOKS_PER_TEAM per team."""
    errors: dict[str, str] = {}
    if not Membership.objects.filter(user=owner, team_id=team_id).exists():
        errors["team"] = "you are not a member of this team"
    message = check_reachable(url, allow_private=settings.LTS_WEBHOOK_ALLOW_PRIVATE)
    if message:
        errors["url"] = message
    message = check_secret(secret)
    if message:
        errors["secret"] = message
    chosen, message = _event_errors(events)
    if message:
        errors["events"] = message
    if errors:
        raise ConfigError(errors)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team_id).first()  # one creation at a time per team: the cap holds
        if Webhook.objects.filter(team_id=team_id).count() >= settings.LTS_WEBHOOKS_PER_TEAM:
            raise ConfigError({"team": f"a team has at most {settings.LTS_WEBHOOKS_PER_TEAM} webhooks: delete one "
                                       "first"})
        return Webhook.objects.create(team_id=team_id, owner=owner, url=url, secret=secret, events=chosen)


def do_delete_webhook(webhook: Webhook) -> None:
    """The webhook and its delivery log; an attempt already running finds its row gone and stops."""
    Webhook.objects.filter(pk=webhook.pk).delete()


# ---- events -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Event:
    team_id: int
    owner_id: int
    summary: str  # one plain sentence: what ended, how
    path: str  # the page to open
    data: dict[str, Any]  # the structured payload


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _emit(event: str, build: Callable[[], _Event | None]) -> None:
    """Handle ``event`` once the current transaction commits (at once outside one); ``build`` reads the work then."""
    transaction.on_commit(lambda: _fan_out(event, build), robust=True)


def notify_search(job_id: int, status: str) -> None:
    """A search finished with ``status``: search.finished when completed, search.failed when failed (a cancel is the
    user's own doing: no event)."""
    event = {"completed": "search.finished", "failed": "search.failed"}.get(str(status))
    if event:
        _emit(event, lambda: _search_event(job_id))


def notify_training(run_id: int, status: str) -> None:
    """A training run finished with ``status``: training.finished or training.failed. A run of a proxy check sends
    none (its check's proxy_check.finished tells of the whole)."""
    event = {"completed": "training.finished", "failed": "training.failed"}.get(str(status))
    if event:
        _emit(event, lambda: _training_event(run_id))


def notify_proxy_check(check_id: int, status: str) -> None:
    """A proxy check finished (completed, or failed: too few models trained): proxy_check.finished."""
    if status in ("completed", "failed"):
        _emit("proxy_check.finished", lambda: _proxy_check_event(check_id))


def _search_event(job_id: int) -> _Event | None:
    job = SearchJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    counts = job.counts or {}
    hypervolume = job.hypervolumes[-1]["hypervolume"] if job.hypervolumes else None
    if job.status == SearchJob.Status.FAILED:
        summary = f'Search "{job.name}" (#{job.pk}) failed: {job.error[:300]}'
    else:
        summary = (f'Search "{job.name}" (#{job.pk}) completed: {job.generation} generations, '
                   f'{counts.get("measured", 0):,} candidates measured, {counts.get("pareto", 0):,} on the frontier.')
    data = {"kind": "search", "id": job.pk, "name": job.name, "status": job.status, "generation": job.generation,
            "candidates": counts.get("candidates", 0), "measured": counts.get("measured", 0),
            "failed": counts.get("failed", 0), "pareto": counts.get("pareto", 0), "hypervolume": hypervolume,
            "error": job.error, "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at)}
    return _Event(job.team_id, job.owner_id, summary, reverse("search-page", args=[job.pk]), data)


def _training_event(run_id: int) -> _Event | None:
    run = (TrainingRun.objects.filter(pk=run_id, proxy_check_member__isnull=True).select_related("zoo_model")
           .defer("history").first())
    if run is None:
        return None
    model = getattr(run, "zoo_model", None)
    if run.status == TrainingRun.Status.FAILED:
        summary = f'Training run "{run.name}" (#{run.pk}) failed: {run.error[:300]}'
    else:
        ppl = f"validation perplexity {run.val_ppl:.2f}" if run.val_ppl is not None else "no validation figure"
        summary = (f'Training run "{run.name}" (#{run.pk}) completed: {ppl} after {run.step:,} steps '
                   f'and {run.tokens_seen:,} tokens.')
    data = {"kind": "training_run", "id": run.pk, "name": run.name, "status": run.status, "archid": run.archid,
            "step": run.step, "tokens_seen": run.tokens_seen, "val_loss": run.val_loss, "val_ppl": run.val_ppl,
            "error": run.error, "zoo_model": model.pk if model is not None else None,
            "created_at": _iso(run.created_at), "finished_at": _iso(run.finished_at)}
    return _Event(run.team_id, run.owner_id, summary, reverse("training-run", args=[run.pk]), data)


def _proxy_check_event(check_id: int) -> _Event | None:
    check = ProxyCheck.objects.filter(pk=check_id).first()
    if check is None:
        return None
    result = check.result or {}
    sentence = result.get("sentence") or ""
    summary = f'Proxy check "{check.name}" (#{check.pk}) {check.status}. {sentence}'.strip()
    data = {"kind": "proxy_check", "id": check.pk, "name": check.name, "status": check.status,
            "sample_size": check.sample_size, "budgets": check.budgets, "sentence": sentence,
            "created_at": _iso(check.created_at), "finished_at": _iso(check.finished_at)}
    return _Event(check.team_id, check.owner_id, summary, reverse("proxy-check", args=[check.pk]), data)


def _fan_out(event: str, build: Callable[[], _Event | None]) -> None:
    """After the commit: one Delivery per webhook of the team that subscribed to ``event``, each sent to a worker.
    Never raises (a notification must not fail the work): a failure is logged."""
    try:
        found = build()
        if found is None:
            return
        hooks = [h for h in Webhook.objects.filter(team_id=found.team_id).only("id", "events") if event in h.events]
        if not hooks:
            return
        team = Team.objects.filter(pk=found.team_id).values_list("name", flat=True).first() or ""
        owner = get_user_model().objects.filter(pk=found.owner_id).values_list("username", flat=True).first()
        link = settings.LTS_PUBLIC_URL + found.path
        body = {"text": f"[{team}] {found.summary}\n{link}", "event": event, "event_id": str(uuid.uuid4()),
                "occurred_at": timezone.now().isoformat(), "url": link, "team": {"id": found.team_id, "name": team},
                "owner": owner, found.data["kind"]: found.data}
        rows = Delivery.objects.bulk_create(
            [Delivery(webhook_id=h.pk, event=event, event_id=body["event_id"], payload=body) for h in hooks])
        _prune(h.pk for h in hooks)
        for row in rows:
            _dispatch(row.pk)
    except Exception:
        logger.exception("notifying %s failed", event)


def _prune(webhook_ids: Iterable[int]) -> None:
    """Each webhook keeps its newest LTS_WEBHOOK_LOG_KEEP deliveries: older ones are deleted once they finished."""
    keep = settings.LTS_WEBHOOK_LOG_KEEP
    for webhook_id in webhook_ids:
        old = Delivery.objects.filter(webhook_id=webhook_id).values_list("pk", flat=True)[keep:keep + 1000]
        Delivery.objects.filter(pk__in=list(old)).exclude(status__in=Delivery.OPEN).delete()


def _dispatch(delivery_id: int, requeues: int = 0) -> None:
    """Queue one delivery once this commits, with the number of re-sends it is (the task ignores a message that a
    later re-send superseded). A broker that cannot be reached leaves it pending in the log (logged), never failing
    the work that finished: do_reap_deliveries sends it again."""
    queueing.send(queueing.DELIVER_WEBHOOK, [delivery_id, requeues], queue="control", best_effort=True)


def _latest_retry_s(attempts: int) -> int:
    """The longest Celery's back-off (workers/notifications.py) may hold the retry after a delivery's ``attempts``-th
    attempt: LTS_WEBHOOK_BACKOFF_S doubling with each retry of the message, at most LTS_WEBHOOK_BACKOFF_MAX_S, full
    jitter drawing below that. A message has retried at most ``attempts`` - 1 times (fewer after a re-send)."""
    return min(settings.LTS_WEBHOOK_BACKOFF_MAX_S, settings.LTS_WEBHOOK_BACKOFF_S * 2 ** max(attempts - 1, 0))


def do_reap_deliveries() -> dict[str, int]:
    """Beat's pass over the open deliveries whose message is overdue by LTS_WEBHOOK_RESEND_AFTER_S: those no attempt
    has claimed, pending (their message never left, or was lost) or retrying (their retry, due by ``queued_at``, was
    lost), and any whose attempt has held its claim that long (its worker died). Each is sent again, superseding its
    earlier messages, at most LTS_WEBHOOK_MAX_RESENDS times; then it fails with the reason. Every change is conditional on the state read, so an attempt that claims the
    delivery meanwhile wins and the delivery is left to it. Returns how many were re-sent and failed."""
    now = timezone.now()
    overdue = now - timedelta(seconds=settings.LTS_WEBHOOK_RESEND_AFTER_S)
    counts = {"resent": 0, "failed": 0}
    # A claimed delivery is judged by its claim alone: a retry may be taken before the latest time it was due.
    rows = (Delivery.objects.filter(status__in=Delivery.OPEN)
            .filter(Q(claimed_at=None, queued_at__lt=overdue) | Q(claimed_at__lt=overdue))
            .only("pk", "status", "requeues", "claimed_at", "created_at", "error"))
    for row in rows:
        observed = Delivery.objects.filter(pk=row.pk, status=row.status, requeues=row.requeues,
                                           claimed_at=row.claimed_at)
        if row.requeues >= settings.LTS_WEBHOOK_MAX_RESENDS:
            waited = round((now - row.created_at).total_seconds() / 60)
            reason = (f"gave up after {row.requeues + 1} sends over {waited} min: "
                      + ("the worker of its last attempt stopped answering" if row.claimed_at is not None else
                         "no worker took its message (the broker could not be reached, or no worker serves the "
                         "control queue)"))
            if row.status == Delivery.Status.RETRYING and row.claimed_at is None:
                reason = f"{reason}; its last attempt: {row.error}"[:1000]
            counts["failed"] += observed.update(status=Delivery.Status.FAILED, error=reason, claimed_at=None,
                                                finished_at=now)
        elif observed.update(requeues=row.requeues + 1, queued_at=now, claimed_at=None):
            _dispatch(row.pk, row.requeues + 1)
            counts["resent"] += 1
            logger.warning("re-sent webhook delivery %s (re-send %s)", row.pk, row.requeues + 1)
    return counts


# ---- delivery (on a worker) ---------------------------------------------------------------------------------------

def do_deliver(delivery_id: int, requeues: int = 0) -> str:
    """One attempt at a delivery, by the message sent with ``requeues``: "succeeded", "failed" (refused, a permanent
    answer, or the last attempt), or "gone": deleted, finished, claimed by an attempt now running, or superseded by a
    re-send (a duplicate or stale message posts nothing). Raises the DeliveryError when another attempt should follow
    (the task schedules it with back-off)."""
    started = timezone.now()
    # The claim: one attempt at a time, by the newest message only (do_reap_deliveries breaks a dead attempt's).
    if not Delivery.objects.filter(pk=delivery_id, status__in=Delivery.OPEN, requeues=requeues, claimed_at=None).update(
            attempts=F("attempts") + 1, last_attempt_at=started, claimed_at=started):
        return "gone"
    delivery = Delivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:
        return "gone"
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {"X-LTS-Event": delivery.event, "X-LTS-Event-Id": str(delivery.event_id),
               "X-LTS-Delivery": str(delivery.pk), "X-LTS-Attempt": str(delivery.attempts)}
    if delivery.webhook.secret:
        headers[SIGNATURE_HEADER] = sign(delivery.webhook.secret, int(time.time()), body)
    clock = time.monotonic()
    rows = Delivery.objects.filter(pk=delivery_id, requeues=requeues)  # under this claim: the reaper's bump fences it
    try:
        response = post(delivery.webhook.url, body, headers, timeout_s=settings.LTS_WEBHOOK_TIMEOUT_S,
                        allow_private=settings.LTS_WEBHOOK_ALLOW_PRIVATE)
    except DeliveryError as exc:
        final = not exc.transient or delivery.attempts >= settings.LTS_WEBHOOK_MAX_ATTEMPTS
        ended = timezone.now()
        # Retrying: the retry message the task sends is due by queued_at; the reaper re-sends it when that is overdue.
        due = {} if final else {"queued_at": ended + timedelta(seconds=_latest_retry_s(delivery.attempts))}
        rows.update(status=Delivery.Status.FAILED if final else Delivery.Status.RETRYING, response_code=exc.status,
                    error=str(exc)[:1000], duration_ms=(time.monotonic() - clock) * 1000, claimed_at=None,
                    finished_at=ended if final else None, **due)
        if final:
            return "failed"
        raise
    rows.update(status=Delivery.Status.SUCCEEDED, response_code=response.status, error="", claimed_at=None,
                duration_ms=(time.monotonic() - clock) * 1000, finished_at=timezone.now())
    return "succeeded"
