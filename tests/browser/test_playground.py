"""The generation playground in a real browser: two zoo models side by side, text streamed into both columns token
by token from a real `generate` worker, then the timings; a bad setting is shown next to its field."""
from __future__ import annotations

import pytest

from models_zoo import services
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _fill, _shot, login, sync_api, watch
from tests.models_zoo.conftest import corpus, roots  # noqa: F401  (fixtures)
from tests.models_zoo.core.test_generation import write_checkpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def zoo_models(actors, roots, corpus):
    data, _ = roots
    text = (data / corpus).read_text()
    write_checkpoint(data / "small", text, n_layer=1, d_model=32)
    write_checkpoint(data / "wide", text, n_layer=2, d_model=64)
    return [services.do_import_model(owner=actors.alice, team=actors.acme, source=name, name=name)
            for name in ("small", "wide")]


@pytest.fixture
def browser(zoo_models, start_worker, roots):
    data, artifacts = roots
    start_worker(["generate"], concurrency=2, env={"LTS_DATA_ROOT": str(data), "LTS_ARTIFACT_ROOT": str(artifacts),
                                                   "OMP_NUM_THREADS": "1", "LTS_GENERATE_THREADS": "1",
                                                   # every token its own event: the test sees them arrive
                                                   "LTS_GENERATE_STREAM_INTERVAL_S": "0"})
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def test_two_models_stream_side_by_side(live_server, zoo_models, browser):
    errors: list[str] = []
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    watch(page, errors)
    page.set_default_timeout(30_000)
    login(page, live_server.url, "bob")

    ids = ",".join(str(m.pk) for m in zoo_models)
    page.goto(f"{live_server.url}/zoo/playground/?models={ids}")
    assert page.locator("#models").evaluate("s => Array.from(s.selectedOptions).length") == 2

    _fill(page, "max_new_tokens", "9999")  # beyond the server's cap: the API's message lands next to the field
    page.click("#generate")
    page.locator('ul.errorlist[data-for="max_new_tokens"] li').first.wait_for()
    assert "LTS_GENERATE_MAX_NEW_TOKENS" in page.locator('ul.errorlist[data-for="max_new_tokens"]').inner_text()

    _fill(page, "prompt", "The old king")
    _fill(page, "max_new_tokens", "40")
    _fill(page, "seed", "3")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.stats.finished').length === 2", timeout=60_000)
    for model in zoo_models:
        output = page.locator(f'.output[data-model="{model.pk}"]')
        assert output.inner_text().startswith("The old king") and len(output.inner_text()) > len("The old king")
        # the prompt, then one text node per streamed piece: the text arrived token by token, not at the end
        assert output.evaluate("node => node.childNodes.length") > 5, page.locator(".playground-outputs").inner_text()
    stats = page.locator(".stats.finished").first.inner_text()
    assert "tokens/s" in stats and "first token after" in stats
    assert "proxy" in page.locator(".playground-outputs").inner_text()
    _shot(page, "playground")
    assert not errors, errors
