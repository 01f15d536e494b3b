"""Every page under the Content-Security-Policy in a real browser: no violation, no uncaught error, nothing asked of
another host; the API docs (Swagger UI, Redoc) draw from the sidecar's copies; a wrong password locks out."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _fill, login, sync_api, watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Redoc's sidebar always asks for its maker's logo (no option turns it off); the CSP refuses it, the image then hides
# itself, and nothing else is asked of another host.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
PAGES = ["/", "/searches/new/", "/devices/", "/zoo/", "/zoo/runs/", "/zoo/train/", "/zoo/datasets/",
         "/zoo/playground/", "/proxy-checks/", "/teams/", "/account/"]


@pytest.fixture
def page(live_server, actors):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(20_000)
            page.errors, page.elsewhere = [], []
            watch(page, page.errors)
            own = urlsplit(live_server.url).netloc
            page.on("request", lambda r: page.elsewhere.append(r.url)
                    if urlsplit(r.url).scheme in ("http", "https") and urlsplit(r.url).netloc != own else None)
            yield page
        finally:
            browser.close()


def test_pages_and_api_docs_run_under_the_csp(live_server, page):
    login(page, live_server.url, "alice")
    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        assert page.locator("header.top").count() == 1, path
    page.goto(f"{live_server.url}/account/")
    page.click("main form[method=post] button[type=submit]")
    assert page.locator("#new-token").inner_text().startswith("Authorization: Token ")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "LTS Studio API" in page.locator(".swagger-ui .info .title").inner_text()
    page.goto(f"{live_server.url}/api/redoc/")
    page.wait_for_selector("h1:has-text('LTS Studio API')")
    page.wait_for_timeout(500)  # Redoc's search worker starts after the first paint
    assert not [e for e in page.errors if REDOC_LOGO not in e], page.errors
    assert not [url for url in page.elsewhere if url != REDOC_LOGO], page.elsewhere


@override_settings(AXES_FAILURE_LIMIT=2)
def test_a_locked_out_login_shows_the_page(live_server, page):
    for _ in range(2):
        page.goto(f"{live_server.url}/login/")
        _fill(page, "username", "bob")
        _fill(page, "password", "wrong")
        page.click("button[type=submit]")
    assert "Too many failed logins" in page.locator("main").inner_text()
    assert not page.errors, page.errors
