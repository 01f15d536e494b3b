"""Delivery on the worker: the body (Slack-compatible text with an absolute link, plus the structured payload), the
signature, retries with back-off, permanent failures, the address guard again at delivery time, the log's bound,
and a notification that can never fail the work."""
from __future__ import annotations

import json

import pytest

from notifications import services
from notifications.core import SIGNATURE_HEADER, verify
from notifications.models import Delivery
from searches import services as search_services
from tests.searches.factories import spec
from workers.notifications import deliver_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_connection(monkeypatch):
    """The task runs here, eagerly, inside the test's transaction: its close_old_connections would close it."""
    import workers.notifications

    monkeypatch.setattr(workers.notifications, "close_old_connections", lambda: None)


@pytest.fixture
def failed_search(actors, webhook, sent_deliveries, django_capture_on_commit_callbacks):
    """A search of acme that failed: one delivery queued (recorded, not sent)."""
    with django_capture_on_commit_callbacks(execute=True):
        job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="edge",
                                               spec=spec(device=None, objectives=["proxy"]))
        search_services.do_fail_search(job.pk, "ValueError: boom")
    assert len(sent_deliveries) == 1
    return job, Delivery.objects.get(pk=sent_deliveries[0])


def test_the_body_is_slack_compatible_signed_and_carries_the_payload(failed_search, receiver, webhook, settings):
    job, delivery = failed_search
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "succeeded"
    (request,) = receiver.requests
    body = json.loads(request["body"])
    link = f"{settings.LTS_PUBLIC_URL}/searches/{job.pk}/"
    assert body["text"] == f'[acme] Search "edge" (#{job.pk}) failed: ValueError: boom\n{link}'
    assert body["event"] == "search.failed" and body["url"] == link and body["owner"] == "alice"
    assert body["team"] == {"id": webhook.team_id, "name": "acme"}
    assert body["search"]["id"] == job.pk and body["search"]["status"] == "failed"
    assert body["search"]["error"] == "ValueError: boom"
    headers = request["headers"]
    assert headers["X-LTS-Event"] == "search.failed" and headers["X-LTS-Event-Id"] == body["event_id"]
    assert headers["X-LTS-Delivery"] == str(delivery.pk) and headers["X-LTS-Attempt"] == "1"
    assert verify("s3cret-key-of-16+chars", headers[SIGNATURE_HEADER], request["body"])
    assert not verify("another-key-of-16+chars", headers[SIGNATURE_HEADER], request["body"])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == ("succeeded", 1, 200, "")
    assert delivery.duration_ms is not None and delivery.duration_ms >= 0 and delivery.finished_at is not None


def test_an_unsigned_webhook_sends_no_signature(failed_search, receiver, webhook):
    _, delivery = failed_search
    type(webhook).objects.filter(pk=webhook.pk).update(secret="")
    deliver_webhook.apply(args=[delivery.pk]).get()
    assert SIGNATURE_HEADER not in receiver.requests[0]["headers"]


def test_transient_failures_are_retried_with_exponential_back_off(failed_search, receiver, monkeypatch, settings):
    _, delivery = failed_search
    countdowns: list[float] = []
    retry = deliver_webhook.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(deliver_webhook, "retry", recording_retry)
    receiver.statuses = [503, 500, 429]
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "succeeded"  # eager: the retries run at once
    assert len(receiver.requests) == 4
    assert [r["headers"]["X-LTS-Attempt"] for r in receiver.requests] == ["1", "2", "3", "4"]
    assert len({r["headers"]["X-LTS-Event-Id"] for r in receiver.requests}) == 1  # receivers dedupe on it
    base = settings.LTS_WEBHOOK_BACKOFF_S
    assert len(countdowns) == 3
    assert all(0 <= c <= min(base * 2 ** i, settings.LTS_WEBHOOK_BACKOFF_MAX_S) for i, c in enumerate(countdowns))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("succeeded", 4, 200)


def test_attempts_are_bounded_then_the_delivery_fails(failed_search, receiver, settings):
    _, delivery = failed_search
    assert deliver_webhook.max_retries == settings.LTS_WEBHOOK_MAX_ATTEMPTS - 1
    receiver.statuses = [503] * 50
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert len(receiver.requests) == settings.LTS_WEBHOOK_MAX_ATTEMPTS
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        "failed", settings.LTS_WEBHOOK_MAX_ATTEMPTS, 503)
    assert delivery.error.startswith("HTTP 503")
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "gone"  # a duplicate message changes nothing


def test_a_permanent_answer_is_not_retried(failed_search, receiver):
    _, delivery = failed_search
    receiver.statuses = [404]
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 404)


def test_the_address_is_checked_again_at_delivery_time(failed_search, receiver, settings):
    _, delivery = failed_search
    settings.LTS_WEBHOOK_ALLOW_PRIVATE = False  # registered while allowed, now refused
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and "127.0.0.1 is a loopback address" in delivery.error


def test_a_name_that_now_resolves_to_a_private_address_is_refused(actors, names, receiver, failed_search, settings):
    _, delivery = failed_search
    settings.LTS_WEBHOOK_ALLOW_PRIVATE = False
    names["hooks.test"] = ["93.184.216.34"]  # public when registered ...
    hook = services.do_create_webhook(owner=actors.bob, team_id=actors.acme.pk,
                                      url=f"http://hooks.test:{receiver.port}/hook")
    Delivery.objects.filter(pk=delivery.pk).update(webhook=hook)
    names["hooks.test"] = ["127.0.0.1"]  # ... rebound to this machine afterwards
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert "hooks.test resolves to 127.0.0.1, which is a loopback address" in delivery.error


def test_the_log_keeps_the_newest_deliveries(actors, webhook, sent_deliveries, settings,
                                             django_capture_on_commit_callbacks):
    settings.LTS_WEBHOOK_LOG_KEEP = 3
    for i in range(5):
        job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name=f"s{i}",
                                               spec=spec(device=None, objectives=["proxy"]))
        with django_capture_on_commit_callbacks(execute=True):
            search_services.do_fail_search(job.pk, "boom")
        Delivery.objects.update(status="succeeded")  # delivered
    kept = list(Delivery.objects.order_by("pk").values_list("payload__search__name", flat=True))
    assert kept == ["s2", "s3", "s4"]


def test_a_notification_never_fails_the_work(actors, webhook, monkeypatch, outbox,
                                             django_capture_on_commit_callbacks):
    from lts_web import queueing

    def broker_down(name, args=(), **options):
        if name == queueing.DELIVER_WEBHOOK:
            raise ConnectionError("broker down")
        outbox.publish(name, args, **options)

    monkeypatch.setattr(queueing, "publish", broker_down)
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(device=None, objectives=["proxy"]))
    with django_capture_on_commit_callbacks(execute=True):
        search_services.do_fail_search(job.pk, "boom")
    job.refresh_from_db()
    assert job.status == "failed"
    assert Delivery.objects.get().status == "pending"  # written, not sent: the log shows it

    monkeypatch.setattr(services, "_search_event", lambda job_id: 1 / 0)  # a bug in building the event
    other = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="t",
                                             spec=spec(device=None, objectives=["proxy"]))
    with django_capture_on_commit_callbacks(execute=True):
        search_services.do_fail_search(other.pk, "boom")
    other.refresh_from_db()
    assert other.status == "failed"


@pytest.fixture
def public_url(settings):
    settings.LTS_PUBLIC_URL = "https://lts.example.org"


def test_links_start_with_the_public_url(public_url, failed_search):
    _, delivery = failed_search
    assert delivery.payload["url"].startswith("https://lts.example.org/searches/")


# ---- a delivery whose message no worker took: beat's reaper sends it again, once per grace, a bounded number of times

def _overdue(settings, **filters) -> None:
    """Make the matching deliveries' message (and claim, if any) older than the grace: the reaper's next pass is due."""
    from datetime import timedelta

    from django.utils import timezone

    then = timezone.now() - timedelta(seconds=settings.LTS_WEBHOOK_RESEND_AFTER_S + 1)
    rows = Delivery.objects.filter(**filters)
    rows.update(queued_at=then)
    rows.exclude(claimed_at=None).update(claimed_at=then)


@pytest.fixture
def reap(django_capture_on_commit_callbacks):
    """One pass of the reaper, its messages sent as they are outside the test's transaction (after the commit)."""
    def run() -> dict[str, int]:
        with django_capture_on_commit_callbacks(execute=True):
            return services.do_reap_deliveries()
    return run


def _resent(outbox) -> list[list]:
    from lts_web import queueing

    return [message["args"] for message in outbox.named(queueing.DELIVER_WEBHOOK)]


def test_the_reaper_is_scheduled_in_beat(settings):
    from lts_web import queueing

    assert queueing.REAP_DELIVERIES in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def test_a_pending_delivery_older_than_the_grace_is_sent_again_a_fresh_one_is_not(reap, failed_search, outbox,
                                                                                     settings):
    _, delivery = failed_search
    assert _resent(outbox) == [[delivery.pk, 0]]  # the first message
    assert reap() == {"resent": 0, "failed": 0}  # within the grace: its message may be queued
    assert _resent(outbox) == [[delivery.pk, 0]]
    _overdue(settings, pk=delivery.pk)
    assert reap() == {"resent": 1, "failed": 0}
    assert _resent(outbox) == [[delivery.pk, 0], [delivery.pk, 1]]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.requeues, delivery.attempts) == ("pending", 1, 0)
    assert reap() == {"resent": 0, "failed": 0}  # just re-sent: the grace starts again


def test_a_broker_that_could_not_be_reached_delays_the_delivery_it_does_not_lose_it(
        reap, actors, webhook, receiver, monkeypatch, outbox, settings, django_capture_on_commit_callbacks):
    from lts_web import queueing

    def broker_down(name, args=(), **options):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queueing, "publish", broker_down)
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(device=None, objectives=["proxy"]))
    with django_capture_on_commit_callbacks(execute=True):
        search_services.do_fail_search(job.pk, "boom")
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    monkeypatch.setattr(queueing, "publish", outbox.publish)  # the broker is back
    outbox.run.add(queueing.DELIVER_WEBHOOK)  # and a worker takes what is sent
    _overdue(settings)
    assert reap() == {"resent": 1, "failed": 0}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert [body["event_id"] for body in receiver.bodies()] == [str(delivery.event_id)]


def test_a_delivery_task_run_twice_delivers_once(failed_search, receiver):
    _, delivery = failed_search
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "succeeded"
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "gone"
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_a_re_sent_delivery_is_posted_once_whichever_message_runs_first(reap, failed_search, receiver, outbox,
                                                                       settings):
    _, delivery = failed_search
    _overdue(settings, pk=delivery.pk)
    reap()  # the first message was only late: now two are queued
    assert _resent(outbox) == [[delivery.pk, 0], [delivery.pk, 1]]
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "gone"  # superseded by the re-send
    assert receiver.requests == []
    assert deliver_webhook.apply(args=[delivery.pk, 1]).get() == "succeeded"
    assert deliver_webhook.apply(args=[delivery.pk, 1]).get() == "gone"
    assert len(receiver.requests) == 1


def test_an_attempt_in_progress_holds_its_claim_until_it_is_stale(reap, failed_search, receiver, outbox, settings):
    from django.utils import timezone

    _, delivery = failed_search
    Delivery.objects.filter(pk=delivery.pk).update(claimed_at=timezone.now(), attempts=1)  # a worker is posting it
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "gone"  # a duplicate message: no second post
    assert receiver.requests == []
    _overdue(settings, pk=delivery.pk)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_at=timezone.now())  # a slow queue, a live attempt
    assert reap() == {"resent": 0, "failed": 0}
    _overdue(settings, pk=delivery.pk)  # the attempt's worker died: its claim is as old as the grace
    assert reap() == {"resent": 1, "failed": 0}
    assert _resent(outbox)[-1] == [delivery.pk, 1]
    assert deliver_webhook.apply(args=[delivery.pk, 1]).get() == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_at) == ("succeeded", 2, None)


def test_re_sends_are_bounded_then_the_delivery_fails_with_the_reason(reap, failed_search, outbox, settings,
                                                                      client, actors):
    _, delivery = failed_search
    settings.LTS_WEBHOOK_MAX_RESENDS = 2
    for _ in range(settings.LTS_WEBHOOK_MAX_RESENDS):
        _overdue(settings, pk=delivery.pk)
        assert reap() == {"resent": 1, "failed": 0}
    _overdue(settings, pk=delivery.pk)
    assert reap() == {"resent": 0, "failed": 1}
    assert _resent(outbox) == [[delivery.pk, 0], [delivery.pk, 1], [delivery.pk, 2]]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.finished_at is not None
    assert delivery.error.startswith("gave up after 3 sends over 0 min: no worker took its message")
    assert deliver_webhook.apply(args=[delivery.pk, 2]).get() == "gone"  # a late message changes nothing
    assert reap() == {"resent": 0, "failed": 0}
    client.force_login(actors.bob)
    assert "no worker took its message" in client.get(f"/teams/{actors.acme.pk}/webhooks/").content.decode()


def _earlier(seconds: float, pk: int) -> None:
    """As if ``seconds`` had passed since the delivery's last send and attempt: its times move back."""
    from datetime import timedelta

    from django.db.models import F

    back = timedelta(seconds=seconds)
    Delivery.objects.filter(pk=pk).update(queued_at=F("queued_at") - back, last_attempt_at=F("last_attempt_at") - back,
                                          created_at=F("created_at") - back)


def test_a_retrying_delivery_whose_retry_was_lost_is_sent_again_once_its_retry_is_overdue(
        reap, failed_search, receiver, outbox, settings):
    from notifications.core import DeliveryError

    _, delivery = failed_search
    # The first retry waits up to 600 s (full jitter below LTS_WEBHOOK_BACKOFF_S), longer than the grace of 300 s.
    settings.LTS_WEBHOOK_BACKOFF_S, settings.LTS_WEBHOOK_RESEND_AFTER_S, settings.LTS_WEBHOOK_MAX_RESENDS = 600, 300, 1
    receiver.statuses = [503]
    with pytest.raises(DeliveryError):  # the task schedules the retry: a message that is then lost, the worker idle
        services.do_deliver(delivery.pk, 0)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_at) == ("retrying", 1, None)
    assert reap() == {"resent": 0, "failed": 0}
    _earlier(301, delivery.pk)  # past the grace, but its retry may be due only 600 s after the attempt
    assert reap() == {"resent": 0, "failed": 0}
    _earlier(600, delivery.pk)  # the retry was due more than the grace ago: it was lost
    assert reap() == {"resent": 1, "failed": 0}
    assert _resent(outbox) == [[delivery.pk, 0], [delivery.pk, 1]]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.requeues, delivery.attempts, delivery.error[:8]) == ("retrying", 1, 1, "HTTP 503")
    assert reap() == {"resent": 0, "failed": 0}  # just re-sent: the grace starts again
    _earlier(301, delivery.pk)  # that message is lost too: the re-sends are spent
    assert reap() == {"resent": 0, "failed": 1}
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.finished_at is not None
    assert delivery.error.startswith("gave up after 2 sends over 20 min: no worker took its message")
    assert "its last attempt: HTTP 503" in delivery.error
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "gone"  # the lost retry, late: nothing is posted
    assert len(receiver.requests) == 1


def test_a_re_sent_retrying_delivery_is_posted_once_by_the_newest_message(reap, failed_search, receiver, outbox,
                                                                          settings):
    from notifications.core import DeliveryError

    _, delivery = failed_search
    receiver.statuses = [503]
    with pytest.raises(DeliveryError):
        services.do_deliver(delivery.pk, 0)
    _earlier(settings.LTS_WEBHOOK_BACKOFF_MAX_S + settings.LTS_WEBHOOK_RESEND_AFTER_S + 1, delivery.pk)
    assert reap() == {"resent": 1, "failed": 0}
    assert deliver_webhook.apply(args=[delivery.pk, 0]).get() == "gone"  # the retry was only late: superseded
    assert deliver_webhook.apply(args=[delivery.pk, 1]).get() == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("succeeded", 2, 2)


def test_a_retry_taken_early_whose_worker_died_is_judged_by_its_claim(reap, failed_search, receiver, outbox, settings):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.core import DeliveryError

    _, delivery = failed_search
    settings.LTS_WEBHOOK_BACKOFF_S = 600  # the retry is due by 600 s after the attempt; jitter ran it at once
    receiver.statuses = [503]
    with pytest.raises(DeliveryError):
        services.do_deliver(delivery.pk, 0)
    stale = timezone.now() - timedelta(seconds=settings.LTS_WEBHOOK_RESEND_AFTER_S + 1)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_at=stale, attempts=2)  # the retry's worker died in it
    assert reap() == {"resent": 1, "failed": 0}
    assert _resent(outbox)[-1] == [delivery.pk, 1]
