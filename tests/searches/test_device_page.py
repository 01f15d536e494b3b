"""The device page /devices/<name>/: each measurement key with its stored cost model (figures and chart data), keys
with too few measurements, the empty state; it reads stored fits and writes nothing."""
from __future__ import annotations

import json
import re

import pytest

from searches import services
from searches.core.profiling import ProfileSettings
from searches.models import CostModelFit
from tests.searches.factories import measured

pytestmark = pytest.mark.django_db


def _page(client, user, path="/devices/edge-1/"):
    client.force_login(user)
    return client.get(path)


def test_the_devices_list_links_each_device_page(client, actors, device):
    page = _page(client, actors.charlie, "/devices/").content.decode()
    assert '<a href="/devices/edge-1/"><strong>edge-1</strong></a>' in page


def test_empty_state(client, actors, device):
    response = _page(client, actors.bob)
    assert response.status_code == 200
    page = response.content.decode()
    assert "No finished measurements on this device yet" in page and "at least 16" in page
    assert "plotly-lts.js" not in page  # nothing to draw: no Plotly


def test_fitted_keys_show_their_figures_and_chart_data_and_the_others_what_they_lack(client, actors, device,
                                                                                   django_assert_max_num_queries):
    measured(device, 24)
    measured(device, 5, ProfileSettings(threads=2), seed=4)
    measured(device, 18, ProfileSettings(seq_len=512), seed=3)  # enough, but no measurement landed since: no fit
    fit = services.do_refit_cost_model(device, ProfileSettings()).fit
    client.force_login(actors.charlie)  # devices serve every team
    with django_assert_max_num_queries(6):  # session, user, device, keys, fits (constant in keys and measurements)
        response = client.get("/devices/edge-1/")
    page = response.content.decode()
    assert response.status_code == 200
    fitted = re.search(r"batch 1 × 1024 tokens · 1 thread ·(.*?)</section>", page, re.S).group(1)
    assert "Fit on 24 measurements" in fitted and "(version 1)" in fitted and "90% nominal coverage" in fitted
    assert f"{100 * fit.latency_mape:.1f}%" in fitted and f"{100 * fit.memory_mape:.1f}%" in fitted
    assert f"{fit.latency_spearman:.3f}" in fitted and f"{100 * fit.memory_coverage:.1f}%" in fitted
    # the check on later measurements: its column, its figures and how many measurements it covers
    assert "Later coverage" in fitted and "later figures over 8 measurements (a coverage over so many is ±11 points)" in fitted
    assert f"{100 * fit.latency_later_coverage:.1f}%" in fitted and f"{100 * fit.memory_later_mape:.1f}%" in fitted
    assert 'id="cost-chart-0-latency"' in fitted and 'id="cost-chart-0-memory"' in fitted
    few = re.search(r"1 × 1024 tokens · 2 threads ·(.*?)</section>", page, re.S).group(1)
    assert "5 finished measurements; a cost model needs at least 16." in few and "cost-chart" not in few
    waiting = re.search(r"1 × 512 tokens ·(.*?)</section>", page, re.S).group(1)
    assert "18 finished measurements, no model yet" in waiting
    charts = json.loads(re.search(r'<script id="cost-charts" type="application/json">(.*?)</script>', page,
                                  re.S).group(1))
    assert len(charts) == 1 and len(charts[0]["latency_s"]) == 24 and len(charts[0]["memory_pred"]) == 24
    assert re.search(r'<script type="module" nonce="[^"]+">', page)  # the drawing script runs under the CSP
    assert "onclick" not in page
    # reading the page fit nothing: the 512-token key is still without a model
    assert CostModelFit.objects.count() == 1


def test_a_refit_shows_the_new_count(client, actors, device):
    measured(device, 20)
    services.do_refit_cost_model(device, ProfileSettings())
    measured(device, 2, start=20)
    page = _page(client, actors.bob).content.decode()
    assert "Fit on 20 measurements (22 now)" in page
    services.do_refit_cost_model(device, ProfileSettings())
    page = _page(client, actors.bob).content.decode()
    assert "Fit on 22 measurements" in page and "(version 2)" in page


def test_unknown_device_is_404_and_the_page_needs_a_login(client, actors, device):
    assert _page(client, actors.bob, "/devices/nowhere/").status_code == 404
    client.logout()
    response = client.get("/devices/edge-1/")
    assert response.status_code == 302 and response.url.startswith("/login/?next=")
