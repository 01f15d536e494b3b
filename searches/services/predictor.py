"""Cost models as a service: each measurement key's latest fit is stored (CostModelFit), refit when its set of
finished measurements changes, and asked for predictions. The science is searches.core.cost_model.

A fit is the finished measurements of one key from the shared cache (every job, every team). When a measurement
lands, its key's refit is queued on commit (``schedule_refit``, the task ``refit_cost_model``); a POST that predicts
refits first when the stored fit is stale. Reads (the device page, the list endpoint) only read stored fits.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet

from lts_web import queueing
from searches.core.arch import Architecture
from searches.core.cost_model import (
    COST_MODEL_VERSION,
    MIN_OBSERVATIONS,
    CostModel,
    NotEnoughData,
    Observation,
    fit_cost_model,
    fitted_on_digest,
)
from searches.core.profiling import ProfileSettings
from searches.models import MEASUREMENT_KEY_FIELDS, CostModelFit, Device, Measurement

__all__ = [
    "Prediction",
    "cache_cutoff",
    "snapshot_cost_model",
    "RefitResult",
    "do_predict",
    "do_refit_cost_model",
    "key_settings",
    "measured_keys",
    "measurement_key",
    "schedule_refit",
]


def measurement_key(settings: ProfileSettings) -> dict[str, Any]:
    """The Measurement columns (besides archid and device) of measurements taken with ``settings``: the measurement
    cache's key and a cost model's, built only here, from the profiler's own ProfileSettings.cache_key()."""
    key = settings.cache_key()
    return {name: key["device" if name == "device_type" else name] for name in MEASUREMENT_KEY_FIELDS}


def key_settings(key: Mapping[str, Any], **options: Any) -> ProfileSettings:
    """ProfileSettings of a measurement key, the inverse of measurement_key (the other fields from ``options``, else
    at their defaults: they do not change the features); ProfileSettingsError for a key that is not one."""
    return ProfileSettings.from_dict({**options, **{("device" if name == "device_type" else name): key[name]
                                                    for name in MEASUREMENT_KEY_FIELDS if name in key}})


def _finished(device: Device, key: Mapping[str, Any]) -> QuerySet[Measurement]:
    return Measurement.objects.filter(device=device, status=Measurement.Status.DONE, latency_median_s__gt=0,
                                      peak_memory_mb__gt=0, **key)


def _observations(finished: QuerySet[Measurement]) -> list[Observation]:
    """The cost model's observations of finished measurements, with when each finished (the check on later
    measurements orders them by it)."""
    rows = finished.values_list("config", "latency_median_s", "peak_memory_mb", "finished_at")
    return [Observation(Architecture.from_dict(config), latency, memory,
                        finished_at.timestamp() if finished_at is not None else None)
            for config, latency, memory, finished_at in rows]


def measured_keys(device: Device) -> list[dict[str, Any]]:
    """Each key of ``device`` with finished measurements, in key order: its fields, ``measurements`` (how many) and
    ``fit``, its stored CostModelFit or None. Two queries: one GROUP BY over the (device, status) index, the fits."""
    keys = list(_finished(device, {}).order_by().values(*MEASUREMENT_KEY_FIELDS)
                .annotate(measurements=Count("id")).order_by(*MEASUREMENT_KEY_FIELDS))
    fits = {tuple(f.key.values()): f for f in device.cost_models.all()}
    return [{**key, "fit": fits.get(tuple(key[name] for name in MEASUREMENT_KEY_FIELDS))} for key in keys]


@dataclass(frozen=True)
class RefitResult:
    """The key's stored fit after the call (None below MIN_OBSERVATIONS), whether this call fit it, and how many
    finished measurements the key has of the ``need``ed."""

    fit: CostModelFit | None
    refitted: bool
    measurements: int
    need: int = MIN_OBSERVATIONS

    @property
    def message(self) -> str:
        return (f"{self.measurements} finished measurements of this key; a cost model needs at least {self.need}: "
                "run a search on this device with these profiling settings, or measure architectures with lts_profile")


def _columns(model: CostModel) -> dict[str, Any]:
    def number(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return {"model": model.to_dict(), "measurements": model.measurements, "fitted_on": model.fitted_on,
            "fitted_at": datetime.fromisoformat(model.fitted_at),
            "latency_mape": model.latency.heldout_mape, "memory_mape": model.memory.heldout_mape,
            "latency_spearman": number(model.latency.heldout_spearman),
            "memory_spearman": number(model.memory.heldout_spearman),
            "latency_coverage": model.latency.heldout_coverage, "memory_coverage": model.memory.heldout_coverage,
            "coverage": model.latency.coverage,
            "later_measurements": model.latency.later_n,
            "latency_later_mape": number(model.latency.later_mape), "memory_later_mape": number(model.memory.later_mape),
            "latency_later_coverage": number(model.latency.later_coverage),
            "memory_later_coverage": number(model.memory.later_coverage),
            "families": {"latency": model.latency.family, "memory": model.memory.family}}


def do_refit_cost_model(device: Device, settings: ProfileSettings) -> RefitResult:
    """Fit the cost model of (device, settings' key) on that key's finished measurements and store it, unless the
    stored fit was made on the same archids (by this version of the code) already. Idempotent: a second call with
    nothing new reads the key's archids and the stored fit, and writes nothing.

    Two refits at once (the task and a POST) each replace only the fit they read (a conditional UPDATE on its
    digest, STYLE habit 2): the loser keeps the winner's, and the next measurement to land refits again.
    """
    key = measurement_key(settings)
    finished = _finished(device, key)
    archids = list(finished.values_list("archid", flat=True))
    stored = CostModelFit.objects.filter(device=device, **key).first()
    if len(archids) < MIN_OBSERVATIONS:
        return RefitResult(fit=None, refitted=False, measurements=len(archids))
    digest = fitted_on_digest(archids)
    if stored is not None and stored.fitted_on == digest and stored.model.get("version") == COST_MODEL_VERSION:
        return RefitResult(fit=stored, refitted=False, measurements=len(archids))
    observations = _observations(finished)
    try:
        model = fit_cost_model(key_settings(key), observations)
    except NotEnoughData as exc:  # only if rows were deleted between the two reads
        return RefitResult(fit=None, refitted=False, measurements=exc.have)
    columns = _columns(model)
    if stored is None:
        try:
            with transaction.atomic():
                fit = CostModelFit.objects.create(device=device, **key, **columns)
            return RefitResult(fit=fit, refitted=True, measurements=model.measurements)
        except IntegrityError:  # a concurrent refit stored the first fit: keep theirs
            return RefitResult(fit=CostModelFit.objects.get(device=device, **key), refitted=False,
                               measurements=len(archids))
    won = CostModelFit.objects.filter(pk=stored.pk, fitted_on=stored.fitted_on).update(
        **columns, version=stored.version + 1)
    fit = CostModelFit.objects.get(pk=stored.pk)
    return RefitResult(fit=fit, refitted=bool(won), measurements=len(archids))


def schedule_refit(measurement_id: int) -> None:
    """Queue the refit of this measurement's key once the transaction that finished it commits. Best effort: a fit
    is derived data (the next measurement of the key, or a POST that predicts, refits it), so a broker that cannot be
    reached (``lts_profile --local`` without one) is logged, not raised."""
    row = Measurement.objects.filter(pk=measurement_id).values("device_id", *MEASUREMENT_KEY_FIELDS).first()
    if row is None:
        return
    device_id = row.pop("device_id")
    queueing.send(queueing.REFIT_COST_MODEL, [device_id, row], best_effort=True)


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for each architecture, in request order: (value, low, high) per target."""

    fit: CostModelFit
    archs: list[Architecture]
    latency: tuple[list[float], list[float], list[float]]
    memory: tuple[list[float], list[float], list[float]]


def do_predict(device: Device, settings: ProfileSettings,
               archs: Sequence[Architecture]) -> Prediction | RefitResult:
    """Predicted latency (s) and peak memory (MB) of ``archs`` on ``device`` under ``settings``, from the key's
    cost model, refit first when measurements landed since it was stored. A RefitResult without a fit when the key
    has too few finished measurements."""
    result = do_refit_cost_model(device, settings)
    if result.fit is None:
        return result
    model = CostModel.from_dict(result.fit.model)
    predicted = model.predict(list(archs))
    as_lists = {target: tuple(array.tolist() for array in predicted[target]) for target in ("latency", "memory")}
    return Prediction(fit=result.fit, archs=list(archs), latency=as_lists["latency"], memory=as_lists["memory"])


# ---- a job's own model (measure "predicted") ----------------------------------------------------------------------


def cache_cutoff(device: Device, settings: ProfileSettings) -> int:
    """The highest id of the key's finished measurements now (0 when none): what a job starting now may use."""
    last = _finished(device, measurement_key(settings)).order_by("-id").values_list("id", flat=True).first()
    return int(last or 0)


def snapshot_cost_model(device: Device, settings: ProfileSettings, *, cutoff: int,
                        measurement_ids: Sequence[int] | QuerySet = ()) -> CostModel:
    """A cost model of the key fit on its finished measurements with id <= ``cutoff`` and those of
    ``measurement_ids`` (a job's own: ids or a subquery of them), never on what other jobs measured later: the same
    inputs give the same model whatever runs beside it. Not stored (CostModelFit is the key's shared latest fit).
    NotEnoughData below MIN_OBSERVATIONS. ``fitted_at`` is fixed: nothing of the model depends on when it was fit."""
    rows = _finished(device, measurement_key(settings)).filter(Q(id__lte=cutoff) | Q(id__in=measurement_ids))
    return fit_cost_model(settings, _observations(rows), now=datetime(2000, 1, 1, tzinfo=UTC))
