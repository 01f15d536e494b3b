"""Cost models as a service: stored fits, refits only when a key's finished measurements change, the refit queued
when a measurement lands, too few measurements, exactly one key's measurements, and the thin task."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from searches import services
from searches.core.cost_model import CostModel, fitted_on_digest
from searches.core.profiling import ProfileSettings
from searches.core.profiling.stats import LatencyStats
from searches.models import CostModelFit, Device, Measurement
from tests.searches.factories import measured

pytestmark = pytest.mark.django_db

DEFAULT = ProfileSettings()


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    """The tasks here run in the test's transaction: their close_old_connections would close it."""
    import workers.tasks

    monkeypatch.setattr(workers.tasks, "close_old_connections", lambda: None)


def _key(settings: ProfileSettings = DEFAULT) -> dict:
    return services.measurement_key(settings)


def test_a_fit_is_stored_with_its_figures(device):
    rows = measured(device, 30)
    result = services.do_refit_cost_model(device, DEFAULT)
    assert result.refitted and result.measurements == 30
    fit = CostModelFit.objects.get()
    assert fit == result.fit and fit.device == device and fit.key == _key()
    assert fit.key == {"backend": "torch", "batch_size": 1, "seq_len": 1024, "threads": 1, "mode": "prefill",
                       "dtype": "float32", "device_type": "cpu"}
    assert fit.version == 1 and fit.measurements == 30
    assert fit.fitted_on == fitted_on_digest([m.archid for m in rows])
    # the synthetic truth is smooth: held-out errors of a few percent, ranks all but exact
    assert 0 < fit.latency_mape < 0.05 and 0 < fit.memory_mape < 0.02
    assert fit.latency_spearman > 0.98 and fit.memory_spearman > 0.98
    assert 0.5 <= fit.latency_coverage <= 1 and fit.coverage == 0.9
    # The check on later measurements: the 14 measured after the first 16, each predicted before it landed.
    assert fit.later_measurements == 30 - 16
    assert 0 < fit.latency_later_mape < 0.08 and 0 < fit.memory_later_mape < 0.03
    assert 0.5 <= fit.latency_later_coverage <= 1 and 0.5 <= fit.memory_later_coverage <= 1
    assert set(fit.families) == {"latency", "memory"} and fit.families["latency"] in ("nnls", "loglinear")
    model = CostModel.from_dict(fit.model)  # the stored JSON is the whole model
    assert model.fitted_on == fit.fitted_on and len(model.heldout["archid"]) == 30


def test_nothing_changed_no_refit(device, django_assert_num_queries):
    measured(device, 20)
    first = services.do_refit_cost_model(device, DEFAULT).fit
    with django_assert_num_queries(2):  # the key's archids and the stored fit: no fit, no write
        again = services.do_refit_cost_model(device, DEFAULT)
    assert not again.refitted and again.fit.pk == first.pk
    fit = CostModelFit.objects.get()
    assert fit.version == 1 and fit.fitted_at == first.fitted_at and fit.model == first.model
    # settings that are not part of the key (how hard to try) are the same model
    assert not services.do_refit_cost_model(device, ProfileSettings(rel_tolerance=0.05, max_repeats=9)).refitted


def _result(value: float) -> SimpleNamespace:
    latency = LatencyStats(median=value, min=value, p10=value, p90=value, mean=value, std=0.0, n=3, ci95=0.01,
                           stopped_by="tolerance", samples=(value,) * 3)
    return SimpleNamespace(latency=latency, peak_memory_mb=80.0, param_bytes=1, onnx_file_bytes=None,
                           wall_time_s=1.0, device={}, versions={}, settings={}, memory_method="vmhwm", phases_s={},
                           measured_at="", host=None)


@pytest.fixture
def refits(outbox):
    """refit_cost_model messages run the task at once; their args are recorded."""
    from lts_web import queueing

    outbox.run.add(queueing.REFIT_COST_MODEL)
    return outbox


def test_a_landing_measurement_refits_its_key(device, refits, django_capture_on_commit_callbacks):
    from searches.core.arch import Architecture
    from searches.core.space import get_space

    measured(device, 20)
    assert services.do_refit_cost_model(device, DEFAULT).fit.version == 1
    arch = next(a for a in get_space("gpt2-lts") if not Measurement.objects.filter(archid=a.archid).exists())
    m = services.do_request_measurement(arch, device, DEFAULT, dispatch=False).measurement
    assert services.try_claim_measurement(m.pk, "w1")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.do_save_measurement(m.pk, "w1", _result(0.05))
    assert len(callbacks) == 1 and [m["args"] for m in refits] == [[device.pk, _key()]]
    assert [m["name"] for m in refits] == ["workers.tasks.refit_cost_model"]
    fit = CostModelFit.objects.get()
    assert fit.version == 2 and fit.measurements == 21 and arch.archid in fit.model["heldout"]["archid"]
    assert Architecture.from_dict(m.config) == arch
    # a result a reclaimed worker can no longer save queues nothing
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert not services.do_save_measurement(m.pk, "w1", _result(0.05))
    assert callbacks == []


def test_a_broker_that_cannot_be_reached_does_not_fail_the_save(device, monkeypatch, caplog,
                                                                django_capture_on_commit_callbacks):
    from lts_web import queueing

    def unreachable(*args, **kwargs):
        raise ConnectionError("no broker")

    monkeypatch.setattr(queueing, "publish", unreachable)
    m = measured(device, 1)[0]
    Measurement.objects.filter(pk=m.pk).update(status="running", claimed_by="w1")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.do_save_measurement(m.pk, "w1", _result(0.05))
    assert "could not queue workers.tasks.refit_cost_model" in caplog.text


def test_too_few_measurements_store_nothing(device):
    measured(device, 15)
    result = services.do_refit_cost_model(device, DEFAULT)
    assert result.fit is None and not result.refitted and (result.measurements, result.need) == (15, 16)
    assert result.message.startswith("15 finished measurements of this key; a cost model needs at least 16")
    assert not CostModelFit.objects.exists()
    measured(device, 1, start=15)
    assert services.do_refit_cost_model(device, DEFAULT).fit.measurements == 16


def test_only_the_exact_keys_finished_measurements_are_used(device):
    mine = measured(device, 20)
    other_threads = ProfileSettings(threads=2)
    measured(device, 25, other_threads, seed=5)  # another key field: another model
    elsewhere = Device.objects.create(name="edge-2")
    measured(elsewhere, 30, seed=6)  # the same settings on another device
    unfinished = measured(device, 3, start=20)
    Measurement.objects.filter(pk=unfinished[0].pk).update(status="failed")
    Measurement.objects.filter(pk=unfinished[1].pk).update(status="pending", latency_median_s=None,
                                                           peak_memory_mb=None)
    Measurement.objects.filter(pk=unfinished[2].pk).update(status="running")
    fit = services.do_refit_cost_model(device, DEFAULT).fit
    assert fit.measurements == 20 and fit.fitted_on == fitted_on_digest([m.archid for m in mine])
    assert services.do_refit_cost_model(device, other_threads).fit.measurements == 25
    assert services.do_refit_cost_model(elsewhere, DEFAULT).fit.measurements == 30
    assert CostModelFit.objects.count() == 3
    keys = services.measured_keys(device)
    assert [(k["threads"], k["measurements"], k["fit"].measurements) for k in keys] == [(1, 20, 20), (2, 25, 25)]


def test_the_refit_task_is_idempotent(device):
    from workers.tasks import refit_cost_model

    key = _key()
    assert refit_cost_model(device.pk, key) == "too-few"
    measured(device, 18)
    assert refit_cost_model(device.pk, key) == "refitted"
    assert refit_cost_model(device.pk, key) == "unchanged"  # a retried or duplicate message changes nothing
    assert CostModelFit.objects.get().version == 1
    measured(device, 2, start=18)
    assert refit_cost_model(device.pk, key) == "refitted"
    assert CostModelFit.objects.get().version == 2
    assert refit_cost_model(device.pk + 100, key) == "missing"
    assert refit_cost_model(device.pk, {**key, "mode": "sideways"}) == "bad-key"
    assert CostModelFit.objects.count() == 1


def test_do_predict_answers_from_the_stored_fit_and_refits_a_stale_one(device):
    from searches.core.space import get_space

    archs = list(get_space("gpt2-lts"))[:5]
    assert services.do_predict(device, DEFAULT, archs).measurements == 0  # a RefitResult: too few
    measured(device, 20)
    first = services.do_predict(device, DEFAULT, archs)
    assert first.fit.version == 1 and [a.archid for a in first.archs] == [a.archid for a in archs]
    value, low, high = first.latency
    assert all(lo < v < hi for v, lo, hi in zip(value, low, high))
    measured(device, 3, start=20)
    assert services.do_predict(device, DEFAULT, archs).fit.version == 2
