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
