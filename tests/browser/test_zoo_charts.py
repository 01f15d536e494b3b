"""The zoo's charts in a real browser: Plotly.js is an ES module (its 3-D trace a chunk of its own), and the pages'
inline scripts that draw with it run after it. The zoo list draws its perplexity-against-latency and -memory charts
with every measured model, a training run's page its loss chart, and neither throws."""
from __future__ import annotations

import pytest

from models_zoo import services
from models_zoo.models import ZooModel
from searches.core.arch import Architecture
from searches.models import Device, Measurement
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _orm, _shot, login, sync_api, watch
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH, corpus, dataset, roots, sent  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODELS = (("fast", 40.0, 0.001), ("good", 20.0, 0.004), ("dominated", 45.0, 0.005))


@pytest.fixture
def zoo(actors, dataset):
    device = Device.objects.create(name="edge-1")
    for i, (name, ppl, latency) in enumerate(MODELS):
        a = Architecture.from_dict({**TINY_ARCH, "n_layer": i + 1})
        ZooModel.objects.create(team=actors.acme, owner=actors.alice, name=name, archid=a.archid, config=a.to_dict(),
                                non_embedding_params=a.non_embedding_params, total_params=a.total_params,
                                source="trained", val_ppl=ppl, path="zoo/x")
        Measurement.objects.create(archid=a.archid, config=a.to_dict(), device=device, backend="torch", batch_size=1,
                                   seq_len=64, threads=1, mode="prefill", dtype="float32", status="done",
                                   latency_median_s=latency, peak_memory_mb=10.0 + ppl)
    return services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                      config=FAST_CONFIG, architecture=TINY_ARCH, name="run-a")


def test_zoo_and_run_charts_draw(live_server, actors, zoo):
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            watch(page, errors)
            login(page, live_server.url, "bob")
            page.goto(f"{live_server.url}/zoo/")
            for chart in ("chart-latency", "chart-memory"):
                # trained models (trace 0) on each chart, as many as were measured
                page.wait_for_function(f"""() => {{ const gd = document.getElementById("{chart}");
                    return gd && gd._fullData && gd._fullData[0].x.length === {len(MODELS)}; }}""", timeout=30_000)
                assert page.locator(f"#{chart} .scatterlayer .point").count() >= len(MODELS)
            _shot(page, "zoo-list")
            page.goto(f"{live_server.url}/zoo/runs/{zoo.pk}/")
            # queued, nothing logged yet: a sentence, not bare axes
            page.wait_for_selector("#loss-empty", state="visible", timeout=30_000)
            assert page.locator("#loss-chart").is_hidden() and "No loss yet" in page.locator("#loss-empty").inner_text()
            assert _orm(lambda: ZooModel.objects.count()) == len(MODELS)
        finally:
            browser.close()
    assert not errors, errors
