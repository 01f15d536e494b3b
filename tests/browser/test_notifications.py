"""Notifications in a real browser: a team's webhook page (a refused address shown at its field, a webhook added,
its delivery in the log, deleted), and "Notify me when it ends" on a search's and a training run's page (a browser
notification when the work ends, a reload of the page included)."""
from __future__ import annotations

import json

import pytest

from models_zoo import services as zoo_services
from models_zoo.models import TrainingRun
from notifications import services
from notifications.models import Delivery, Webhook
from searches import services as search_services
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _fill, _orm, _shot, login, sync_api, watch
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH, corpus, dataset, roots, sent  # noqa: F401  (fixtures)
from tests.notifications.conftest import Receiver
from tests.searches.factories import spec

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records what the page shows as a notification, in localStorage so that a reload keeps it; permission is asked for
# (and granted, and remembered for the site) as a browser asks the user.
FAKE_NOTIFICATION = """
(() => {
  class RecordingNotification {
    constructor(title, options) {
      const notes = JSON.parse(localStorage.getItem("lts-test-notes") || "[]");
      notes.push({title, body: options && options.body});
      localStorage.setItem("lts-test-notes", JSON.stringify(notes));
    }
    close() {}
    static get permission() { return localStorage.getItem("lts-test-permission") || "default"; }
    static requestPermission() {
      localStorage.setItem("lts-test-permission", "granted");
      return Promise.resolve("granted");
    }
  }
  window.Notification = RecordingNotification;
})();
"""


@pytest.fixture
def browser(live_server, actors):
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def queued(outbox):
    """Work and delivery messages are recorded, not sent (tests/conftest.py outbox): the test delivers in-process.
    The ids of the deliveries queued so far."""
    from tests.notifications.conftest import _SentDeliveries

    return _SentDeliveries(outbox)


def _notes(page) -> list[dict]:
    return json.loads(page.evaluate("() => localStorage.getItem('lts-test-notes') || '[]'"))


def test_the_team_webhook_page_adds_lists_logs_and_deletes(live_server, actors, browser, settings, queued):
    receiver = Receiver()
    errors: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(20_000)
        watch(page, errors)
        login(page, live_server.url, "alice")
        page.goto(f"{live_server.url}/teams/")
        page.click(f"a[href='/teams/{actors.acme.pk}/webhooks/']")
        page.wait_for_url(f"{live_server.url}/teams/{actors.acme.pk}/webhooks/")
        assert "No webhooks yet." in page.locator("#webhooks").inner_text()

        _fill(page, "url", receiver.url)  # 127.0.0.1: refused while the setting is off (the default)
        _fill(page, "secret", "short")
        page.click("#webhook-form button[type=submit]")
        form = page.locator("#webhook-form")
        form.wait_for()
        assert "127.0.0.1 is a loopback address" in form.inner_text()
        assert "16 to 256 characters" in form.inner_text()
        _shot(page, "team-webhooks-refused")
        assert not _orm(lambda: Webhook.objects.exists())

        settings.LTS_WEBHOOK_ALLOW_PRIVATE = True  # the tests' receiver is on this machine
        _fill(page, "url", receiver.url)
        _fill(page, "secret", "a-secret-of-sixteen+")
        page.uncheck("input[name=events][value='training.finished']")
        page.click("#webhook-form button[type=submit]")
        page.wait_for_selector(".messages li:has-text('Added webhook')")
        row = page.locator("#webhooks tbody tr")
        assert row.count() == 1 and receiver.url in row.inner_text() and "training.finished" not in row.inner_text()
        hook = _orm(lambda: Webhook.objects.get())
        assert hook.secret == "a-secret-of-sixteen+" and "training.finished" not in hook.events

        def finish_and_deliver():
            job = search_services.do_create_search(owner=actors.bob, team=actors.acme, name="edge",
                                                   spec=spec(device=None, objectives=["proxy"]))
            search_services.do_fail_search(job.pk, "ValueError: boom")
            return [services.do_deliver(pk) for pk in list(queued)]

        assert _orm(finish_and_deliver) == ["succeeded"]
        assert json.loads(receiver.requests[0]["body"])["event"] == "search.failed"
        page.reload()
        log = page.locator("#deliveries tbody tr")
        assert log.count() == 1
        cells = [log.locator("td").nth(i).inner_text() for i in range(6)]
        assert cells[1:6] == ["search.failed", f"#{hook.pk}", "succeeded", "200", "1"]
        _shot(page, "team-webhooks")

        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#webhooks button:has-text('Delete')")
        page.wait_for_selector(".messages li:has-text('Deleted webhook')")
        assert "No webhooks yet." in page.locator("#webhooks").inner_text()
        assert not _orm(lambda: Webhook.objects.exists() or Delivery.objects.exists())
    finally:
        receiver.close()
    assert not errors, errors


def test_a_member_sees_the_webhooks_but_deletes_only_their_own(live_server, actors, browser, settings):
    settings.LTS_WEBHOOK_ALLOW_PRIVATE = True
    _orm(lambda: services.do_create_webhook(owner=actors.alice, team_id=actors.acme.pk, url="http://127.0.0.1:9/a"))
    _orm(lambda: services.do_create_webhook(owner=actors.bob, team_id=actors.acme.pk, url="http://127.0.0.1:9/b"))
    page = browser.new_page()
    page.set_default_timeout(20_000)
    login(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/teams/{actors.acme.pk}/webhooks/")
    rows = page.locator("#webhooks tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("button").count() == 0 and rows.nth(1).locator("button").count() == 1
    response = page.goto(f"{live_server.url}/teams/{actors.other.pk}/webhooks/")
    assert response.status == 404


def test_notify_me_when_a_search_ends(live_server, actors, browser, queued):
    job = _orm(lambda: search_services.do_create_search(owner=actors.bob, team=actors.acme, name="edge",
                                                        spec=spec(device=None, objectives=["proxy"])))
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_init_script(FAKE_NOTIFICATION)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch(page, errors)
    login(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/searches/{job.pk}/")
    button = page.locator("button[data-notify]")
    button.wait_for(state="visible")
    assert button.inner_text() == "Notify me when it ends"
    button.click()
    page.wait_for_function("() => document.querySelector('button[data-notify]').textContent"
                           ".startsWith('You will be notified')")
    _shot(page, "search-notify-asked")
    assert _notes(page) == []
    _orm(lambda: search_services.do_fail_search(job.pk, "ValueError: boom"))
    page.wait_for_function("() => (localStorage.getItem('lts-test-notes') || '').includes('failed')", timeout=15_000)
    assert _notes(page) == [{"title": f'Search "edge" (#{job.pk}) failed', "body": "LTS Studio"}]
    assert button.inner_text() == "It failed"
    page.reload()  # nothing more once it was shown
    page.wait_for_timeout(500)
    assert len(_notes(page)) == 1 and page.locator("button[data-notify]").is_hidden()
    assert not errors, errors


def test_notify_me_on_a_training_run_page_survives_its_reload(live_server, actors, dataset, browser):
    run = _orm(lambda: zoo_services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset,
                                                      tokenizer="bpe:400", config=FAST_CONFIG,
                                                      architecture=TINY_ARCH, name="tiny", dispatch=False))
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.add_init_script(FAKE_NOTIFICATION)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch(page, errors)
    login(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/zoo/runs/{run.pk}/")
    page.click("button[data-notify]")
    page.wait_for_function("() => document.querySelector('button[data-notify]').textContent"
                           ".startsWith('You will be notified')")
    _shot(page, "training-run-notify-asked")
    # The run's page reloads itself when the run ends (its own 2 s poll), the notification's poll is every 5 s:
    # whichever sees the end first, the notification is shown once.
    _orm(lambda: TrainingRun.objects.filter(pk=run.pk).update(status="completed", val_ppl=12.5))
    page.wait_for_function("() => (localStorage.getItem('lts-test-notes') || '').includes('completed')",
                           timeout=15_000)
    page.wait_for_timeout(6000)  # a second poll or reload would add another
    assert _notes(page) == [{"title": f'Training run "tiny" (#{run.pk}) completed', "body": "LTS Studio"}]
    assert not errors, errors
