"""Proxy-check pages: the list and its form (field errors in place), the check's page (sentence, coefficients with
intervals, the chart's data, failed runs with their reason), team scoping, and the panel on the search page."""
from __future__ import annotations

import json

import pytest

from models_zoo import services as zoo_services
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.models import ProxyCheck
from searches import services as search_services
from tests.models_zoo.proxy_checks.conftest import TINY_CONFIG, TINY_SPACE, TOKENS
from tests.models_zoo.proxy_checks.test_services import _finish
from tests.searches.factories import spec

pytestmark = pytest.mark.django_db


def _form(dataset, **overrides):
    data = {"name": "from the page", "team": dataset.team_id, "source": "space", "space": json.dumps(TINY_SPACE),
            "dataset": dataset.pk, "tokenizer": "bpe:300", "sample_size": 3, "max_tokens": TOKENS, "seq_len": 32,
            "batch_size": 8, "lr": 0.003, "seed": 1, "extra": ""}
    data.update(overrides)
    return data


def test_the_form_starts_a_check_and_shows_service_errors_next_to_their_inputs(client, actors, dataset, sent):
    client.force_login(actors.bob)
    page = client.get("/proxy-checks/")
    assert page.status_code == 200 and "Start a proxy check" in page.content.decode()
    response = client.post("/proxy-checks/", _form(dataset, seq_len=128))
    assert response.status_code == 400
    assert "exceeds the architecture&#x27;s max_sequence_length" in response.content.decode()
    response = client.post("/proxy-checks/", _form(dataset, extra='{"max_steps": 3}'))
    assert response.status_code == 400 and "budget is max_tokens" in response.content.decode()
    response = client.post("/proxy-checks/", _form(dataset, compare_budget="on"))
    check = ProxyCheck.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/proxy-checks/{check.pk}/"
    assert check.owner == actors.bob and check.budgets == [TOKENS, 2 * TOKENS] and len(sent) == 6
    assert check.config["lr"] == 0.003 and check.config["min_lr"] == pytest.approx(0.0003)


def test_the_check_page_shows_the_result_the_chart_data_and_the_failures(client, actors, dataset, sent, create):
    check = create(sample_size=5, name="acme check")
    runs = sorted(m.run_id for m in check.members.all())
    _finish(check, only=runs[:4])
    zoo_services.do_fail_training(runs[4], None, "DataError: boom in the validation part")
    client.force_login(actors.bob)
    html = client.get(f"/proxy-checks/{check.pk}/").content.decode()
    assert "Short-run ranking after 512 tokens per model, 4 models" in html
    assert "1 failed or cancelled and excluded" in html and "excluded: DataError: boom in the validation part" in html
    assert "non-embedding parameters (the LTS proxy)" in html and "total parameters" in html and "d_model" in html
    assert "-1.000" in html and "too small to judge" in html  # 4 models: a perfect ranking could be chance
    data = json.loads(html.split('<script id="page-data" type="application/json">')[1].split("</script>")[0])
    assert data["finished"] and len(data["chart"]["points"]) == 4
    assert {"proxy", "total_params", "d_model", "ppl", "run"} <= set(data["chart"]["points"][0])
    listing = client.get("/proxy-checks/").content.decode()
    assert "acme check" in listing and "-1.00" in listing
    client.force_login(actors.charlie)
    assert client.get(f"/proxy-checks/{check.pk}/").status_code == 404
    assert "acme check" not in client.get("/proxy-checks/").content.decode()
    assert client.post(f"/proxy-checks/{check.pk}/delete/").status_code == 404


def test_the_check_page_writes_its_settings_for_a_reader_as_the_run_page(client, actors, create):
    check = create(sample_size=3, config={**TINY_CONFIG, "grad_clip": 0.0, "min_lr": 5.9999999999999995e-05,
                                          "checkpoint_interval": 0, "betas": [0.9, 0.95], "batch_size": 1024,
                                          "seq_len": 32})
    client.force_login(actors.bob)
    html = client.get(f"/proxy-checks/{check.pk}/").content.decode()
    settings = html[html.index("<dt>Settings</dt>"):]
    settings = settings[:settings.index("</dd>")]
    for key, shown in (("grad_clip", "off"), ("checkpoint_interval", "off"), ("min_lr", "0.00006"),
                       ("betas", "0.9, 0.95"), ("batch_size", "1,024"), ("lr", "0.003")):
        assert f"<code>{key}</code> {shown}" in settings, (key, settings)
    for raw in ("{", "&quot;", "e-05", ".0 ", "["):
        assert raw not in settings, (raw, settings)


def test_cancel_and_delete_need_the_owner_or_an_admin(client, actors, create):
    check = create(sample_size=3, owner=actors.alice)
    client.force_login(actors.bob)
    assert client.post(f"/proxy-checks/{check.pk}/cancel/").status_code == 403
    client.force_login(actors.alice)
    assert client.post(f"/proxy-checks/{check.pk}/cancel/").status_code == 302
    assert ProxyCheck.objects.get(pk=check.pk).status == "cancelled"
    again = client.post(f"/proxy-checks/{check.pk}/cancel/", follow=True)
    assert again.status_code == 200 and "cannot cancel a check that is cancelled" in again.content.decode()
    assert client.post(f"/proxy-checks/{check.pk}/delete/").status_code == 302
    assert not ProxyCheck.objects.exists()


def test_the_search_page_shows_the_checks_of_its_space(client, actors, create):
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="s",
                                           spec=spec(objectives=["proxy"], device=None, space=TINY_SPACE))
    client.force_login(actors.bob)
    html = client.get(f"/searches/{job.pk}/").content.decode()
    assert "No check of this space yet." in html and f"/proxy-checks/?search={job.pk}" in html
    form = client.get(f"/proxy-checks/?search={job.pk}").content.decode()
    assert 'value="space" selected' in form  # still running: its space, not its candidates
    check = create(sample_size=3, name="same space")  # drawn from the same space document
    _finish(check)
    html = client.get(f"/searches/{job.pk}/").content.decode()
    assert "same space" in html and "too small to judge</strong>: 3 models" in html  # 3 models: no verdict
    assert services.space_key(job.spec["space"]) == check.space_key
