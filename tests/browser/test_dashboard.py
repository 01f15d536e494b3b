"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright, against a live server
and real Celery workers. Logs in through the form, gets a field error from the API shown next to its field, submits a
tiny search, watches the frontier chart fill while it runs, opens a candidate from the chart, and saves screenshots
under var/screenshots/ (light and dark) beside those of every page visited (tests/browser/conftest.py)."""
from __future__ import annotations

import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections

from searches.models import Device, SearchJob
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                               "(pip install -r requirements-dev.txt)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium executable: apt-get install chromium (.ci/run does)", allow_module_level=True)

# What .ci/run's machines allow: no sandbox as root, no GPU (WebGL falls back to SwiftShader), nothing phoning home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
FAST_RECOVERY = {"LTS_HEARTBEAT_S": "1", "LTS_DEVICE_OFFLINE_AFTER_S": "4", "LTS_REAPER_INTERVAL_S": "1",
                 "LTS_JOB_STALL_S": "5"}
# 2 * 2 * 2 = 8 architectures of vocabulary 256: the whole search measures in ~15 s on 2 cores.
TINY_SPACE = {"n_layer": "1, 2", "d_model": "32, 64", "d_inner": "32, 64", "n_head": "2", "vocab_size": "256",
              "max_sequence_length": "64", "dropatt": "0"}


@pytest.fixture
def browser(actors, profiling_device):
    """Started after the database rows and workers it needs, stopped before they go."""
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def profiling_device(start_worker, actors):
    name = f"web-{uuid.uuid4().hex[:6]}"
    start_worker(["control"], env=FAST_RECOVERY)
    start_worker([f"profile.{name}"], env={"LTS_DEVICE": name, **FAST_RECOVERY})
    wait_for(lambda: Device.objects.filter(name=name).exists(), 90, message=f"device {name} to register")
    return name


def _orm(query):
    """Playwright's sync API keeps an event loop running in the test's thread, where Django refuses (and would give a
    connection of its own to) database calls: they run in a short-lived thread that closes its connection."""
    def run():
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _fill(page, field: str, value: str) -> None:
    page.locator(f'[name="{field}"]').fill(value)


def watch(page, errors: list[str]) -> None:
    """Uncaught errors and Content-Security-Policy violations (Chromium's console report and the DOM event) of the
    page are appended to errors. (The pages' CSP has no 'unsafe-eval': a wait_for_function predicate must be an arrow
    function, which Playwright compiles outside the page, not an expression it would eval in it.)"""
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', (e) => console.error("
                         "`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));")


def login(page, base_url: str, username: str) -> None:
    """Through the login form, with the actors' password."""
    page.goto(f"{base_url}/login/")
    _fill(page, "username", username)
    _fill(page, "password", f"{username}-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def _click_point(page, chart_id: str, trace: int = 2) -> str:
    """A real mouse click on the first point of a trace (2: the Pareto frontier), placed with Plotly's own axes; the
    hover card's text before the click."""
    x, y = page.evaluate("""([id, trace]) => {
        const gd = document.getElementById(id), full = gd._fullLayout, data = gd._fullData[trace];
        const box = gd.getBoundingClientRect();
        return [box.left + full._size.l + full.xaxis.d2p(data.x[0]), box.top + full._size.t + full.yaxis.d2p(data.y[0])];
    }""", [chart_id, trace])
    page.mouse.move(x, y)
    page.wait_for_timeout(300)  # Plotly picks the hovered point on move; the click then opens it
    card = page.locator(".plot-tooltip").inner_text()
    page.mouse.click(x, y)
    return card


def test_submit_watch_and_open_a_candidate(live_server, actors, profiling_device, browser):
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light")
    page = context.new_page()
    watch(page, errors)
    page.set_default_timeout(20_000)

    login(page, live_server.url, "bob")
    assert page.locator("h1").inner_text().startswith("Searches")

    page.goto(f"{live_server.url}/searches/new/")
    page.select_option("#f-preset", "")
    for key, value in TINY_SPACE.items():
        _fill(page, f"space.{key}", value)
    page.wait_for_function("() => document.getElementById('preview-size').textContent.startsWith('8 architectures')")
    _fill(page, "name", "browser tiny")
    page.check(f'input[name=device][value="{profiling_device}"]')
    _fill(page, "profiling.seq_len", "4096")  # longer than the space's max_sequence_length (64): refused
    _fill(page, "profiling.max_seconds", "0.2")
    _fill(page, "profiling.max_repeats", "5")
    _fill(page, "profiling.host_wait_s", "0.2")
    _fill(page, "budget.generations", "2")
    # The evolution measuring every candidate (the paper's procedure), not the default "scored": two generations.
    assert page.locator("#f-algorithm").input_value() == "scored" and page.locator("#f-measure").input_value() == "predicted"
    page.select_option("#f-algorithm", "evolution")
    page.select_option("#f-measure", "all")
    page.locator("details summary").click()
    _fill(page, "params.init_population", "4")
    _fill(page, "params.num_crossovers", "2")
    _fill(page, "params.num_random_mix", "2")
    page.click("#submit")
    error = page.locator('[data-error-for="profiling.seq_len"]')
    error.wait_for(state="visible")
    assert "max_sequence_length" in error.inner_text()
    assert page.locator('[name="profiling.seq_len"]').get_attribute("aria-invalid") == "true"
    assert "1 field to correct" in page.locator('[data-error-for="non_field_errors"]').inner_text()
    assert not _orm(SearchJob.objects.exists)
    _shot(page, "new-search-field-error")

    _fill(page, "profiling.seq_len", "32")
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/searches/\d+/$"))
    job = _orm(lambda: SearchJob.objects.select_related("owner", "device").get(name="browser tiny"))
    assert job.owner.username == "bob" and job.device.name == profiling_device and job.spec["preset"] is None
    assert job.spec["space"]["d_model"] == [32, 64] and job.spec["profiling"]["seq_len"] == 32
    assert job.spec["profiling"]["host_wait_s"] == 0.2

    # the frontier chart fills from the live poll while the search runs
    page.wait_for_function("() => Number(document.getElementById('chart-frontier').dataset.points) > 0", timeout=90_000)
    _shot(page, "search-detail-running")
    page.wait_for_function("() => document.getElementById('job-status').textContent === 'completed'", timeout=120_000)
    _orm(job.refresh_from_db)
    assert job.status == "completed", job.error
    measured = job.counts["measured"]
    page.wait_for_function(f"() => Number(document.getElementById('chart-frontier').dataset.points) === {measured}")
    assert page.locator("#table-count").inner_text() == str(job.counts["candidates"])
    assert page.locator("#live").inner_text() == ""  # polling stopped
    hv_points = page.evaluate("document.getElementById('chart-hv').dataset.points")
    assert hv_points == str(len(job.hypervolumes)) == "2"
    # generations are numbered 1 to N everywhere the page shows one (the field counts from 0): the header, the
    # hypervolume chart's axis, the colour bar, the table and its filter, the hover card
    assert page.locator("#progress-text").inner_text().startswith("generation 2/2")
    assert page.evaluate("Array.from(document.getElementById('chart-hv')._fullData[0].x)") == [1, 2]
    ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-frontier .colorbar .cbaxis text'), "
                          "(t) => t.textContent)")
    assert ticks and set(ticks) <= {"1", "1.5", "2"} and {"1", "2"} <= set(ticks), ticks
    column = page.evaluate("Array.from(document.querySelectorAll('#candidates tbody td:nth-child(2)'), "
                           "(td) => td.textContent)")
    assert column and set(column) <= {"1", "2"}, column
    first = _orm(lambda: job.candidates.filter(generation=0).count())
    page.fill("#filter-generation", "1")
    page.wait_for_function(f"() => document.getElementById('table-count').textContent.startsWith('{first} of ')")
    page.fill("#filter-generation", "")
    page.wait_for_function(f"() => document.getElementById('table-count').textContent === '{job.counts['candidates']}'")
    # the 3-D view is drawn when shown, and the choice is remembered in this browser
    three = page.locator("#chart-3d")
    assert not three.is_visible() and three.get_attribute("data-points") == "0"
    page.check("#show-3d")
    page.wait_for_function(f"() => Number(document.getElementById('chart-3d').dataset.points) === {measured}")
    assert three.is_visible() and page.locator("#chart-3d .gl-container canvas").count() >= 1
    _shot(page, "search-detail-light")

    dark = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark",
                               storage_state=context.storage_state())
    dark_page = dark.new_page()
    watch(dark_page, errors)
    dark_page.goto(page.url)
    dark_page.wait_for_function(
        f"() => Number(document.getElementById('chart-frontier').dataset.points) === {measured}")
    dark_page.wait_for_function(f"() => Number(document.getElementById('chart-3d').dataset.points) === {measured}")
    assert dark_page.is_checked("#show-3d")
    _shot(dark_page, "search-detail-dark")
    dark.close()

    # a click on a frontier point opens that candidate's page (its hover card shown first)
    card = _click_point(page, "chart-frontier")
    page.wait_for_url(re.compile(r".*/candidates/gpt2_[0-9a-f]{40}/$"))
    archid = page.url.rstrip("/").rsplit("/", 1)[1]
    candidate = _orm(lambda: job.candidates.get(archid=archid))
    assert candidate.is_pareto
    assert archid in card and f"generation {candidate.generation + 1} ({candidate.origin})" in card
    assert page.locator("table.kv tr:has(th:text-is('generation')) td").inner_text() == str(candidate.generation + 1)
    assert archid in page.locator("h1").inner_text()
    assert profiling_device in page.locator("table.measurements").inner_text()
    _shot(page, "candidate-detail")
    assert not errors, errors
    context.close()

