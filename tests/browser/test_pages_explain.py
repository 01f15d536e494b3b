"""In a real browser: pages that explain themselves and numbers that mean one thing everywhere. The data is
made before the browser starts (searches run by the test, as tests/searches do; no workers), so these run in seconds.
Screenshots of every page land under var/screenshots/ (tests/browser/conftest.py); the chart pages get one more
after their charts are drawn."""
from __future__ import annotations

import re

import pytest
from django.utils import timezone

from lts_web import numbers, queueing
from models_zoo.core import TrainConfig
from models_zoo.models import TrainingRun
from searches import services
from searches.models import Device
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_dashboard import CHROMIUM, CHROMIUM_ARGS, login, sync_api, watch
from tests.searches.factories import run_job, spec

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TINY_ARCH = {"n_layer": 1, "d_model": 32, "d_inner": 64, "n_head": 2, "vocab_size": 256, "max_sequence_length": 64}
VALUES = {
    "latency": [0.0475, 0.012558, 0.0005123, 1.2345, 9.9999, 12.34, None],
    "memory": [133.456, 1234.5, 0.5, 77.5],
    "params": [132736, 999, 999999, 1234567, 2.5e9],
    "int": [1048576, 0, 4096],
    "number": [5.9999999999999995e-05, 14380.2, 999.6, 0.0123456, 47.25, -2.345],
}
# The queues this file's searches would send to: the orchestration's and edge-1's profiling queue.
QUEUES = ["control", "profile.edge-1"]
PYTHON = {"latency": numbers.latency, "memory": numbers.memory, "params": numbers.params, "int": numbers.count,
          "number": numbers.significant}


@pytest.fixture(autouse=True)
def _leaves_the_broker_as_it_found_it():
    """Nothing these tests do may stay in the broker for a later test (230 measurement messages left in
    profile.edge-1 once made tests/searches' queue-length check of the devices page fail)."""
    before = queueing.queue_lengths(QUEUES)
    yield
    assert queueing.queue_lengths(QUEUES) == before


@pytest.fixture
def data(actors, outbox):
    """A finished 3-objective search (alice's, team acme), a queued one, and two training runs. What the services
    send is recorded, not sent (the test runs the search's steps itself and starts no worker): these tests commit,
    so a real message would stay in the broker."""
    Device.objects.create(name="edge-1", last_heartbeat=timezone.now(), backends=["torch"],
                          hardware={"cpu_model": "Test CPU", "cpu_cores_logical": 2})
    done = services.do_create_search(owner=actors.alice, team=actors.acme, name="three objectives", spec=spec())
    run_job(done)
    queued = services.do_create_search(owner=actors.alice, team=actors.acme, name="not started", spec=spec())
    common = dict(team=actors.acme, owner=actors.alice, architecture=TINY_ARCH, archid="gpt2_x", tokenizer="bpe:400")
    queued_run = TrainingRun.objects.create(name="waiting", config={"max_steps": 30, "log_interval": 10}, **common)
    # the settings as a run stores them (TrainConfig.to_dict): every one, the limits not set among them
    config = {**TrainConfig(max_steps=30, checkpoint_interval=0).to_dict(), "min_lr": 5.9999999999999995e-05}
    stopped = TrainingRun.objects.create(name="done", status="completed", step=30, total_steps=30, config=config,
                                         tokens_seen=1048576, **common)
    done.refresh_from_db()
    return {"done": done, "queued": queued, "queued_run": queued_run, "stopped": stopped,
            "candidate": done.candidates.filter(is_pareto=True).first()}


@pytest.fixture
def page(live_server, data):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(20_000)
            page.errors = []
            watch(page, page.errors)
            login(page, live_server.url, "alice")
            yield page
        finally:
            browser.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"issue19-{name}.png"), full_page=True)


def test_the_js_helper_writes_every_number_as_the_template_filter_does(live_server, page):
    page.goto(f"{live_server.url}/searches/new/")
    page.wait_for_function("() => typeof LTS === 'object'")
    written = page.evaluate("""(values) => Object.fromEntries(Object.entries(values).map(
        ([name, list]) => [name, list.map((v) => LTS[name](v))]))""", VALUES)
    expected = {name: [PYTHON[name](v) for v in values] for name, values in VALUES.items()}
    assert written == expected
    assert expected["latency"][:2] == ["47.5 ms", "12.6 ms"] and expected["params"][0] == "133k"
    assert expected["number"][0] == "0.00006" and not page.errors, page.errors


def test_the_new_search_form_shows_every_error_at_once_and_marks_required_fields(live_server, page):
    page.goto(f"{live_server.url}/searches/new/")
    assert page.locator('label[for="f-name"] abbr.required').count() == 1
    page.select_option("#f-algorithm", "evolution")  # whose parameters init_population is
    page.locator("details:has([name='params.init_population']) summary").click()
    page.locator('[name="params.init_population"]').fill("0")
    page.locator('[name="budget.generations"]').fill("0")
    page.locator("#new-search button[type=submit]").click()
    name_error = page.locator('[data-error-for="name"]')
    name_error.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('[data-error-for=\"params.init_population\"]').textContent")
    assert "blank" in name_error.inner_text()
    assert page.locator('[data-error-for="params.init_population"]').inner_text().strip()
    assert page.locator('[data-error-for="budget.generations"]').inner_text().strip()
    _shot(page, "new-search-every-error")
    assert not page.errors, page.errors


# Every option's text fits its select: its width less the padding and Chromium's arrow (about 20 px), measured with
# the select's own font (a select shows the chosen option's text clipped, with no scrollbar to tell).
_OPTIONS_THAT_DO_NOT_FIT = """(id) => {
    const select = document.getElementById(id), style = getComputedStyle(select);
    const context = document.createElement("canvas").getContext("2d");
    context.font = style.font;
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 24;
    return [...select.options].map((o) => o.text).filter((text) => context.measureText(text).width > room);
}"""


@pytest.mark.parametrize("width", [1300, 800])
def test_the_algorithm_and_what_to_measure_read_in_full(live_server, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/searches/new/")
    for select in ("f-algorithm", "f-measure"):
        assert page.evaluate(_OPTIONS_THAT_DO_NOT_FIT, select) == [], (select, width)
    _shot(page, f"new-search-{width}px")


def _shown_params(page) -> set[str]:
    return set(page.evaluate("() => [...document.querySelectorAll('[name^=\"params.\"]')]"
                             ".filter((i) => i.offsetParent !== null).map((i) => i.name.slice(7))"))


def test_the_algorithm_parameters_are_those_of_the_chosen_algorithm(live_server, page):
    page.goto(f"{live_server.url}/searches/new/")
    summary = page.locator("details:has([name='params.batch']) summary")
    assert summary.inner_text().startswith("Algorithm parameters")
    summary.click()
    assert _shown_params(page) == {"batch", "min_gain", "exploration"}  # the default: scored, predicted
    page.select_option("#f-algorithm", "evolution")
    evolution = {"init_population", "mutations_per_parent", "num_crossovers", "num_random_mix", "max_unseen",
                 "mutation_prob"}
    assert _shown_params(page) == evolution | {"exploration"}
    page.select_option("#f-measure", "all")
    assert _shown_params(page) == evolution
    page.select_option("#f-algorithm", "random")
    assert _shown_params(page) == evolution - {"mutation_prob"}
    _shot(page, "new-search-random-parameters")
    assert not page.errors, page.errors


def test_searches_is_the_list(live_server, page):
    page.goto(f"{live_server.url}/searches/")
    assert page.locator("h1").inner_text().startswith("Searches") and page.get_by_text("three objectives").count()


def test_the_search_page_draws_each_views_frontier_and_numbers_generations_as_the_header(live_server, page, data):
    job = data["done"]
    page.goto(f"{live_server.url}/searches/{job.pk}/")
    page.wait_for_function("() => Number(document.getElementById('chart-frontier').dataset.points) > 0")
    page.wait_for_function("() => Number(document.getElementById('chart-hv').dataset.points) > 0")
    names = page.evaluate("() => document.getElementById('chart-frontier').data.map((t) => t.name)")
    assert "Pareto frontier (all 3 objectives)" in names and "non-dominated in this view (2 objectives)" in names
    lines = page.evaluate("""() => document.getElementById('chart-frontier').data
        .filter((t) => t.name.startsWith('non-dominated')).map((t) => Array.from(t.x).length)""")
    assert len(lines) == 2 and all(n >= 1 for n in lines)
    budget = job.spec["budget"]["generations"]
    assert f"generation {budget}/{budget}" in page.locator("#progress-text").inner_text()
    hv_x = page.evaluate("() => Array.from(document.getElementById('chart-hv').data[0].x)")
    assert hv_x == list(range(1, budget + 1))
    assert page.locator(".chart-empty:visible").count() == 0
    page.check("#show-3d")
    page.wait_for_function("() => Number(document.getElementById('chart-3d').dataset.points) > 0", timeout=60_000)
    # the 3-D scene's axis titles: the scene keeps a margin inside the figure
    domain = page.evaluate("() => document.getElementById('chart-3d').layout.scene.domain")
    assert domain["x"][0] > 0 and domain["x"][1] < 1
    _shot(page, "search-detail-3-objectives")
    assert not page.errors, page.errors


def test_an_empty_chart_says_a_sentence(live_server, page, data):
    page.goto(f"{live_server.url}/searches/{data['queued'].pk}/")
    empty = page.locator(".chart.wide .chart-empty")
    empty.wait_for(state="visible")
    assert "No measurement yet" in empty.inner_text()
    assert "No generation has finished yet" in page.locator("#chart-hv").inner_text()
    _shot(page, "search-detail-empty")
    page.goto(f"{live_server.url}/zoo/runs/{data['queued_run'].pk}/")
    page.locator("#loss-empty").wait_for(state="visible")
    assert "No loss yet" in page.locator("#loss-empty").inner_text()
    assert "waiting for a training worker" in page.locator("#progress").inner_text()
    assert not page.errors, page.errors


def test_the_candidate_pages_measurement_table_fits_its_width(live_server, page, data):
    job, candidate = data["done"], data["candidate"]
    page.goto(f"{live_server.url}/searches/{job.pk}/candidates/{candidate.archid}/")
    wrap = page.locator("table.measurements").locator("xpath=..")
    scroll, client = wrap.evaluate("(node) => [node.scrollWidth, node.clientWidth]")
    assert scroll <= client, (scroll, client)
    text = page.locator("main").inner_text()
    assert "e-0" not in text  # no float printed with an exponent


def test_a_finished_run_says_why_it_stopped_and_its_settings_read_plainly(live_server, page, data):
    page.goto(f"{live_server.url}/zoo/runs/{data['stopped'].pk}/")
    assert "reached its step budget (30 steps)" in page.locator("#stop-reason").inner_text()
    main = page.locator("main").inner_text()
    assert "min_lr 0.00006" in main and "5.9999999999999995e-05" not in main
    assert "1,048,576" in main  # tokens with separators
    settings = page.locator("dt:text-is('Settings') + dd").inner_text()
    for shown in ("max_steps 30", "max_tokens no limit", "max_minutes no limit", "checkpoint_interval off",
                  "eval_interval 250", "betas 0.9, 0.95", "grad_clip 1 ", "dropout 0 ", "lr 0.0006"):
        assert shown in settings, (shown, settings)
    assert not re.search(r"None|True|False|\[|\]|\d\.0\b", settings), settings  # no Python repr, no list, no 1.0


def test_train_names_an_unknown_candidate_and_the_dataset_detour_comes_back(live_server, page):
    page.goto(f"{live_server.url}/zoo/train/?candidate=99999")
    assert "Candidate #99999 does not exist" in page.locator("#missing-candidates").inner_text()
    page.locator('a[href^="/zoo/datasets/?next="]').click()
    page.wait_for_url(re.compile(r".*/zoo/datasets/\?next="))
    assert page.locator("#back-to-training a").get_attribute("href") == "/zoo/train/?candidate=99999"


def test_a_get_of_the_import_address_shows_the_form(live_server, page):
    page.goto(f"{live_server.url}/zoo/import/")
    assert page.url == f"{live_server.url}/zoo/" and page.get_by_text("Import a checkpoint").count()
