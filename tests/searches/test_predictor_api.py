"""REST of cost models: POST /api/v1/devices/{name}/predict/ (200 with intervals, 409 below the minimum, 400 with every
field's message, 404, anonymous refused, a rate of its own) and GET /api/v1/devices/{name}/predictor/ (every key of
the device with its figures, paged, constant queries)."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from searches import services
from searches.core.profiling import ProfileSettings
from searches.core.space import get_space
from searches.models import CostModelFit
from tests.searches.factories import measured

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices/edge-1/predict/"
LIST = "/api/v1/devices/edge-1/predictor/"
ARCHS = list(get_space("gpt2-lts"))[::1000]  # 6 shapes across the space


@pytest.fixture
def bob(api_client, actors):
    api_client.force_authenticate(actors.bob)
    return api_client


def _body(archs=ARCHS, **profiling):
    return {"architectures": [a.to_dict() for a in archs], "profiling": profiling}


def test_predictions_with_intervals_and_the_models_figures(bob, device):
    measured(device, 30)
    response = bob.post(URL, _body(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    fit = CostModelFit.objects.get()
    model = body["model"]
    assert model["device"] == "edge-1" and model["measurements"] == 30 and model["version"] == 1
    assert model["seq_len"] == 1024 and model["device_type"] == "cpu" and model["coverage"] == 0.9
    assert model["latency_mape"] == fit.latency_mape and model["memory_spearman"] == fit.memory_spearman
    assert set(model) >= {"fitted_at", "fitted_on", "latency_coverage", "memory_coverage", "families",
                          "later_measurements", "latency_later_mape", "latency_later_coverage",
                          "memory_later_mape", "memory_later_coverage"}
    assert model["later_measurements"] > 0 and 0 <= model["latency_later_coverage"] <= 1
    assert [r["archid"] for r in body["results"]] == [a.archid for a in ARCHS]
    for row in body["results"]:
        assert set(row) == {"archid", "latency_s", "latency_interval", "memory_mb", "memory_interval", "measurements",
                            "latency_mape", "memory_mape"}
        assert row["latency_interval"][0] < row["latency_s"] < row["latency_interval"][1]
        assert row["memory_interval"][0] < row["memory_mb"] < row["memory_interval"][1]
        assert row["measurements"] == 30 and row["latency_mape"] == fit.latency_mape
    # bigger architectures are predicted slower and larger (the shapes grow along the space's order)
    small, large = body["results"][0], max(body["results"], key=lambda r: r["memory_mb"])
    assert small["memory_mb"] < large["memory_mb"]
    # a second request reuses the stored fit
    assert bob.post(URL, _body(), format="json").json()["model"]["version"] == 1


def test_too_few_measurements_is_409_with_the_count(bob, device):
    measured(device, 10)
    response = bob.post(URL, _body(), format="json")
    assert response.status_code == 409
    assert response.json()["measurements"] == 10 and response.json()["need"] == 16
    assert response.json()["detail"].startswith("10 finished measurements of this key; a cost model needs at least 16")
    # another key of the same device has none at all
    other = bob.post(URL, _body(threads=2), format="json")
    assert other.status_code == 409 and other.json()["measurements"] == 0
    assert not CostModelFit.objects.exists()


def test_bad_input_is_400_with_every_fields_message(bob, device):
    good = ARCHS[0].to_dict()
    body = {"architectures": [good, {**good, "n_head": 7}, {**good, "n_heads": 4}, "gpt2", {**good, "d_model": 10**9},
                              {**good, "max_sequence_length": 64}],
            "profiling": {"seq_len": 128, "threads": 0, "sideways": 1}, "extra": True}
    response = bob.post(URL, body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"architectures.1.n_head", "architectures.2.n_heads", "architectures.3",
                           "architectures.4.d_model", "profiling.sideways", "extra"}
    assert "divisible" in errors["architectures.1.n_head"][0]
    assert errors["architectures.2.n_heads"] == ["unknown hyperparameter"]
    assert "JSON object" in errors["architectures.3"][0] and "at most 32,768" in errors["architectures.4.d_model"][0]
    assert errors["extra"][0].startswith("unknown field")
    # valid settings: each field's bounds, and each architecture checked against them
    response = bob.post(URL, {"architectures": [good, {**good, "max_sequence_length": 64}],
                              "profiling": {"seq_len": 128, "threads": 0, "mode": "sideways"}}, format="json")
    assert set(response.json()) == {"profiling.threads", "profiling.mode"}
    response = bob.post(URL, {"architectures": [good, {**good, "max_sequence_length": 64}],
                              "profiling": {"seq_len": 128}}, format="json")
    assert set(response.json()) == {"architectures.1.max_sequence_length"}
    message = response.json()["architectures.1.max_sequence_length"][0]
    assert "exceeds the architecture's max_sequence_length (64)" in message
    for architectures, message in (([], "give 1 to 1000"), ([good] * 1001, "got 1001"), ({}, "must be a list")):
        response = bob.post(URL, {"architectures": architectures, "profiling": []}, format="json")
        assert response.status_code == 400
        assert message in response.json()["architectures"][0] and "profiling" in response.json()
    missing = bob.post(URL, {}, format="json")
    assert missing.status_code == 400 and "architectures" in missing.json()
    assert not CostModelFit.objects.exists()


def test_unknown_device_is_404_and_anonymous_is_refused(api_client, bob, device):
    assert bob.post("/api/v1/devices/nowhere/predict/", _body(), format="json").status_code == 404
    assert bob.get("/api/v1/devices/nowhere/predictor/").status_code == 404
    api_client.force_authenticate(None)
    assert api_client.post(URL, _body(), format="json").status_code in (401, 403)
    assert api_client.get(LIST).status_code in (401, 403)


def test_devices_serve_every_team(api_client, actors, device):
    measured(device, 20)
    api_client.force_authenticate(actors.charlie)  # in another team than the searches that measured
    assert api_client.post(URL, _body(), format="json").status_code == 200
    assert api_client.get(LIST).json()["count"] == 1


def test_predictions_beyond_the_users_rate_are_429(bob, device):
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK,
                                           "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK[
                                               "DEFAULT_THROTTLE_RATES"], "predict": "2/min"}}):
        assert bob.post(URL, _body(), format="json").status_code == 409
        assert bob.post(URL, {}, format="json").status_code == 400  # refused bodies count too
        refused = bob.post(URL, _body(), format="json")
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
        assert bob.get(LIST).status_code == 200  # reading is not limited


def test_the_predictor_list_shows_every_key_with_its_figures(bob, device, django_assert_num_queries):
    measured(device, 20)  # fitted
    measured(device, 17, ProfileSettings(seq_len=512), seed=3)  # enough, but nothing refit it yet
    measured(device, 5, ProfileSettings(threads=2), seed=4)  # too few
    services.do_refit_cost_model(device, ProfileSettings())
    with django_assert_num_queries(3):  # the device, its keys (one GROUP BY: a device has tens), its fits
        response = bob.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    rows = {(r["seq_len"], r["threads"]): r for r in body["results"]}
    assert [(r["seq_len"], r["threads"]) for r in body["results"]] == [(512, 1), (1024, 1), (1024, 2)]
    fitted = rows[(1024, 1)]
    assert fitted["measurements"] == 20 and fitted["need"] == 16
    assert fitted["model"]["measurements"] == 20 and 0 < fitted["model"]["latency_mape"] < 0.05
    assert rows[(512, 1)]["model"] is None and rows[(512, 1)]["measurements"] == 17
    assert rows[(1024, 2)]["model"] is None and rows[(1024, 2)]["measurements"] == 5
    assert CostModelFit.objects.count() == 1  # the list reads; it fits nothing
    page = bob.get(LIST, {"limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [r["seq_len"] for r in page["results"]] == [1024]
    assert bob.get(LIST, {"limit": 0}).status_code == 400


def test_a_device_name_with_a_dot_is_found(bob):
    # Device names may hold '.', which DRF's default lookup pattern stops at (a 404 for every route of the device).
    from searches.models import Device

    Device.objects.create(name="jetson.orin-1")
    assert bob.get("/api/v1/devices/jetson.orin-1/").status_code == 200
    assert bob.get("/api/v1/devices/jetson.orin-1/predictor/").status_code == 200
