"""The device page in a real browser: from the devices list to a device, whose cost model's predicted-vs-measured
charts (latency and memory, log axes, the y = x line) draw every measurement behind the fit, under the CSP."""
from __future__ import annotations

import pytest

from searches import services
from searches.core.profiling import ProfileSettings
from searches.models import CostModelFit, Device
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _orm, _shot, login, sync_api, watch
from tests.searches.factories import measured

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

N = 24


@pytest.fixture
def fitted(actors):
    device = Device.objects.create(name="edge-1", backends=["torch"], hardware={"cpu_model": "Test CPU"})
    measured(device, N)
    measured(device, 4, ProfileSettings(threads=2), seed=2)  # too few: no chart
    return services.do_refit_cost_model(device, ProfileSettings()).fit


def test_device_page_draws_both_charts(live_server, fitted):
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(20_000)
            watch(page, errors)
            login(page, live_server.url, "charlie")  # devices serve every team
            page.goto(f"{live_server.url}/devices/")
            page.click("a[href='/devices/edge-1/']")
            page.wait_for_url(f"{live_server.url}/devices/edge-1/")
            for chart in ("cost-chart-0-latency", "cost-chart-0-memory"):
                # trace 0 is the y = x line, trace 1 the measurements
                page.wait_for_function(f"""() => {{ const gd = document.getElementById("{chart}");
                    return gd && gd._fullData && gd._fullData[1] && gd._fullData[1].x.length === {N}; }}""",
                                       timeout=30_000)
                assert page.locator(f"#{chart} .scatterlayer .point").count() == N
                axes = page.evaluate(f"""() => {{ const l = document.getElementById("{chart}")._fullLayout;
                    return [l.xaxis.type, l.yaxis.type]; }}""")
                assert axes == ["log", "log"]
            # Latency in ms as on every other page: the chart's points are the stored seconds times 1000.
            fit = _orm(lambda: CostModelFit.objects.get(device__name="edge-1", threads=1))
            drawn = page.evaluate("""() => document.getElementById("cost-chart-0-latency")._fullData[1].x""")
            assert drawn == pytest.approx([1000 * v for v in fit.model["heldout"]["latency_s"]])
            assert page.evaluate("""() => document.getElementById("cost-chart-0-latency")._fullLayout.title.text"""
                                 ) == "latency (ms)"
            assert page.locator(".cost-chart").count() == 2  # the key with too few measurements has none
            assert "a cost model needs at least 16" in page.locator("main").inner_text()
            _shot(page, "device-cost-models")
        finally:
            browser.close()
    assert not errors, errors
