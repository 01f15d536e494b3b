"""Every state change of devices, measurements and search jobs goes through a do_* function (STYLE.md)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from lts_web import queueing
from searches.core.arch import Architecture
from searches.core.profiling import ProfileResult, ProfileSettings, device_limit_errors
from searches.models import Device, Measurement
from searches.queues import resend_lost
from searches.services.predictor import key_settings, measurement_key, schedule_refit

__all__ = [
    "MeasurementRequest",
    "do_fail_measurement",
    "do_reap_measurements",
    "do_request_measurement",
    "do_retry_measurement",
    "do_save_measurement",
    "measurement_settings",
    "profile_limit_errors",
    "try_claim_measurement",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasurementRequest:
    measurement: Measurement
    cached: bool  # the result was already there (or already on its way): nothing new was dispatched
    dispatched: bool  # a task message was sent for it now


def _key(arch: Architecture, device: Device, profile: ProfileSettings) -> dict:
    return {"archid": arch.archid, "device": device, **measurement_key(profile)}


def measurement_settings(measurement: Measurement) -> ProfileSettings:
    """The full ProfileSettings of a stored measurement (key fields plus the stored options)."""
    return key_settings(measurement.key, **measurement.options)


def profile_limit_errors(device: Device | None, profile: ProfileSettings,
                         dims: Mapping[str, int] | None = None) -> dict[str, str]:
    """What ``device`` cannot measure with ``profile`` (threads beyond its cores, a forward of ``dims``, the largest
    architecture, beyond its memory) and this server's caps (LTS_PROFILE_MAX_THREADS, LTS_PROFILE_MAX_SECONDS); field
    -> message. A device not registered yet (None, or no hardware) gets only the server's caps."""
    return device_limit_errors(profile, dims, device.hardware if device is not None else {},
                               device_name=device.name if device is not None else "",
                               max_threads=settings.LTS_PROFILE_MAX_THREADS,
                               max_seconds=settings.LTS_PROFILE_MAX_SECONDS)


def _dispatch(measurement_id: int, queue: str) -> None:
    """Send the task only if this caller wins the right to (QueuedWorkQuerySet.dispatch_once)."""
    task_id = Measurement.objects.dispatch_once(measurement_id)
    if task_id:
        queueing.send(queueing.PROFILE_MEASUREMENT, [measurement_id], queue=queue, task_id=task_id)


def do_request_measurement(
    arch: Architecture, device: Device, profile: ProfileSettings, *, dispatch: bool = True
) -> MeasurementRequest:
    """Return the cached measurement of this key, or create it and queue it on the device's own queue.

    dispatch=False only creates the row (the caller measures it in-process: `lts_profile --local`).
    """
    profile.check_arch(arch)
    key = _key(arch, device, profile)
    options = {k: v for k, v in profile.to_dict().items() if k not in profile.cache_key()}
    measurement = Measurement.objects.filter(**key).first()
    created = False
    if measurement is None:
        try:
            with transaction.atomic():
                measurement = Measurement.objects.create(**key, config=arch.to_dict(), options=options)
                created = True
        except IntegrityError:  # a concurrent request created it first: theirs is ours
            measurement = Measurement.objects.get(**key)
    if dispatch and measurement.status == Measurement.Status.PENDING and not measurement.task_id:
        _dispatch(measurement.pk, device.queue)
        measurement.refresh_from_db()
        return MeasurementRequest(measurement, cached=False, dispatched=True)
    return MeasurementRequest(measurement, cached=not created, dispatched=False)


def try_claim_measurement(measurement_id: int, worker: str) -> bool:
    """Conditional UPDATE (STYLE habit 2): pending, or running with a heartbeat so old that its worker is gone."""
    return Measurement.objects.claim(measurement_id, worker, started_at=timezone.now())


def do_save_measurement(measurement_id: int, worker: str, result: ProfileResult) -> bool:
    """Store a result, only if this worker still holds the claim (a reaped-and-reclaimed row is not overwritten);
    a stored result queues the refit of its key's cost model."""
    latency = result.latency
    saved = bool(
        Measurement.objects.claimed(measurement_id, worker).update(
            status=Measurement.Status.DONE, finished_at=timezone.now(), heartbeat_at=timezone.now(),
            latency_median_s=latency.median, latency_p10_s=latency.p10, latency_p90_s=latency.p90,
            latency_mean_s=latency.mean, latency_std_s=latency.std, latency_n=latency.n,
            peak_memory_mb=result.peak_memory_mb, param_bytes=result.param_bytes,
            onnx_file_bytes=result.onnx_file_bytes, wall_s=result.wall_time_s,
            details={
                "device": result.device, "versions": result.versions, "settings": result.settings,
                "memory_method": result.memory_method, "phases_s": result.phases_s, "measured_at": result.measured_at,
                "latency_ci95": latency.ci95, "latency_stopped_by": latency.stopped_by,
                "latency_samples": list(latency.samples), "host": result.host,
            },
        )
    )
    if saved:
        schedule_refit(measurement_id)
    return saved


def do_fail_measurement(measurement_id: int, worker: str | None, reason: str) -> bool:
    return Measurement.objects.fail(measurement_id, worker, reason, unless=(Measurement.Status.DONE,))


def do_retry_measurement(measurement: Measurement) -> Measurement:
    """Put a failed measurement back in its device's queue (a user's explicit retry)."""
    with transaction.atomic():
        Measurement.objects.filter(pk=measurement.pk, status=Measurement.Status.FAILED).update(
            status=Measurement.Status.PENDING, task_id="", attempts=0, error="", finished_at=None
        )
        _dispatch(measurement.pk, measurement.device.queue)
    measurement.refresh_from_db()
    return measurement


def do_reap_measurements(*, broker_lost: bool = False) -> dict[str, int]:
    """Running rows whose heartbeat stopped: re-queue (bounded by LTS_MEASUREMENT_MAX_ATTEMPTS), then fail them.
    Pending rows whose message is gone: sent again (searches.queues.resend_lost; ``broker_lost`` comes from
    searches.queues.broker_lost_data).

    Tolerates races: every change is a conditional UPDATE on the stale state it observed; a duplicate message is
    harmless because only one claim can win.
    """
    pending = Measurement.objects.filter(status=Measurement.Status.PENDING).select_related("device")
    # A profiling worker killed after taking a message and before claiming its row leaves that message in the
    # broker's unacknowledged set until the visibility timeout (13 h); its restart re-registers the device
    # (registered_at), so a pending row sent before that is checked at this pass instead of after 600 s.
    redispatched = resend_lost(pending, lambda m: m.device.queue, lambda m: _dispatch(m.pk, m.device.queue),
                               broker_lost=broker_lost, suspect_now=Q(dispatched_at__lt=F("device__registered_at")))
    counts = Measurement.objects.select_related("device").reap_stale(
        max_attempts=settings.LTS_MEASUREMENT_MAX_ATTEMPTS, dispatch=lambda m: _dispatch(m.pk, m.device.queue),
        give_up=lambda m: (f"the worker died or went silent {m.attempts} times (last: {m.claimed_by or 'unknown'}); "
                           "giving up: retry it once the device is healthy"))
    return {"requeued": counts["requeued"], "failed": counts["failed"], "redispatched": redispatched}
