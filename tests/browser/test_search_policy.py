"""measure "predicted" in a real browser: predicted candidates drawn as hollow markers, the counter, the status
filter, and "Measure now" on a candidate page, under the Content-Security-Policy."""
from __future__ import annotations

import math

import pytest
from django.utils import timezone

from searches import services
from searches.models import Candidate, Device
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _orm, login, sync_api, watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def predicted_job(actors, outbox):
    """A finished tiny search with measure "predicted", measured by the in-process fake profiler; no task is sent."""
    from tests.searches.factories import run_job
    from tests.searches.test_jobs_policy import smooth, tiny

    Device.objects.create(name="edge-1", last_heartbeat=timezone.now(), backends=["torch"],
                          hardware={"cpu_model": "Test CPU", "cpu_cores_logical": 2})
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="predicted", spec=tiny())
    run_job(job, objectives=smooth)
    return job


@pytest.fixture
def page(live_server, predicted_job):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(20_000)
            page.errors = []
            watch(page, page.errors)
            yield page
        finally:
            browser.close()


def test_predicted_candidates_are_drawn_hollow_and_measured_on_demand(live_server, predicted_job, page):
    job = predicted_job
    predicted = job.counts["predicted"]
    assert predicted > 0
    login(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/searches/{job.pk}/")
    page.wait_for_function("() => window.LTS_FIRST_DRAW_MS !== undefined")
    assert f"{predicted} predicted (hollow)" in page.locator("#chart-status").inner_text()
    assert "hardware time saved ~" in page.locator("#progress-text").inner_text()
    # The colour bar runs 1 to the last generation with candidates, not to the one the completed search looked for.
    last = _orm(lambda: max(Candidate.objects.filter(job=job).values_list("generation", flat=True))) + 1
    assert last < predicted_job.generation + 1
    ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-frontier .colorbar .cbaxis text'), "
                          "(t) => t.textContent)")
    assert ticks and max(float(t) for t in ticks) == last, ticks
    # How the intervals held on what was measured, from the live job state as from the first load.
    checked = job.counts["predictions_checked"]
    assert checked > 0 and page.locator("#predictions").is_visible()
    assert page.locator("#predictions-text").inner_text() == (
        f"latency inside its 90% interval for {job.counts['latency_inside']} of {checked} measured candidates, "
        f"peak memory for {job.counts['memory_inside']} of {checked} (over {checked}, "
        f"±{math.floor(30 / math.sqrt(checked) + 0.5)} points)")
    # The 2-D figure: per panel, candidates, infeasible, frontier, then the predicted ones (hollow).
    drawn = page.evaluate("""() => document.getElementById('chart-frontier')._fullData
        .filter((d) => d.name === 'predicted, not measured').map((d) => [d.x.length, d.marker.symbol])""")
    assert drawn == [[predicted, "circle-open"]] * 2
    page.select_option("#filter-status", "predicted")
    page.wait_for_function(f"() => document.getElementById('table-count').textContent.startsWith('{predicted} of')")
    statuses = page.locator("#candidates tbody .status").all_inner_texts()
    assert statuses and set(statuses) == {"predicted"}

    target = _orm(lambda: Candidate.objects.filter(job=job, status="predicted").first())
    page.goto(f"{live_server.url}/searches/{job.pk}/candidates/{target.archid}/")
    page.click("#measure-candidate")
    page.wait_for_selector(".page-head .status-measuring")
    assert _orm(lambda: Candidate.objects.get(pk=target.pk).status) == "measuring"
    assert not page.errors, page.errors
