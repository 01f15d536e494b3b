"""Celery tasks. Thin: take primary keys, load, call the core, save (STYLE.md). A missing row is logged, not raised."""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import platform
import socket
from collections.abc import Iterator

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from searches import services
from searches.core.arch import Architecture, ConfigError
from searches.core.profiling import ProfilingError, profile
from searches.models import Device, Measurement
from searches.queues import broker_lost_data
from workers.heartbeat import Heartbeat

logger = logging.getLogger(__name__)


@shared_task(name="workers.tasks.ping")
def ping(payload: str = "pong") -> dict:
    """A round trip through the broker and the result store; used by health tooling and tests."""
    return {"payload": payload, "hostname": socket.gethostname(), "python": platform.python_version()}


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Celery's prefork pool marks its processes daemonic, and multiprocessing refuses children to a daemon.

    The profiler's children are fresh processes that it joins or kills itself before returning, so lifting the
    flag for the call is safe; without it every measurement fails with "daemonic processes are not allowed to
    have children". Billiard also leaves its own authkey type there, which the stdlib refuses to pickle when it
    sends the key to the forkserver: swap in the stdlib type holding the same bytes.
    """
    from multiprocessing.process import AuthenticationString

    process = multiprocessing.current_process()
    saved = dict(process._config)
    process._config["daemon"] = False
    if "authkey" in saved:
        process._config["authkey"] = AuthenticationString(bytes(saved["authkey"]))
    try:
        yield
    finally:
        process._config.clear()
        process._config.update(saved)


@shared_task(name="workers.tasks.profile_measurement", bind=True, acks_late=True, reject_on_worker_lost=True)
def profile_measurement(self, measurement_id: int) -> str:
    """Measure one architecture on this worker's device. Sent only to the queue profile.<device>."""
    close_old_connections()
    measurement = Measurement.objects.filter(pk=measurement_id).select_related("device").first()
    if measurement is None:
        logger.warning("measurement %s no longer exists", measurement_id)
        return "missing"
    if measurement.device.name != settings.LTS_DEVICE:
        # Routing sends it to profile.<device>; a worker with the wrong LTS_DEVICE must not time someone else's.
        logger.error("measurement %s is for device %s, this worker is %s", measurement_id, measurement.device.name,
                     settings.LTS_DEVICE)
        return "wrong-device"
    worker = f"{self.request.hostname or socket.gethostname()}:{self.request.id}"
    if not services.try_claim_measurement(measurement_id, worker):
        return "already-claimed"  # done, failed, or running on a live worker: re-delivery is a no-op
    try:
        arch = Architecture.from_dict(measurement.config)
        profile_settings = services.measurement_settings(measurement)
        beat = Heartbeat(lambda: Measurement.objects.heartbeat(measurement_id, worker), settings.LTS_HEARTBEAT_S,
                         name=f"heartbeat of measurement {measurement_id}")
        with beat, _children_allowed():
            result = profile(arch, profile_settings, timeout_s=settings.LTS_PROFILE_TIMEOUT_S)
    except ProfilingError as exc:  # a crash, a timeout, an out-of-memory: permanent for these settings
        outcome = "failed" if services.do_fail_measurement(measurement_id, worker, str(exc)) else "lost-claim"
    except Exception as exc:
        services.do_fail_measurement(measurement_id, worker, f"{type(exc).__name__}: {exc}")
        services.do_measurement_finished(measurement_id)
        raise
    else:
        outcome = "done" if services.do_save_measurement(measurement_id, worker, result) else "lost-claim"
    if outcome == "lost-claim":
        logger.warning("measurement %s was reclaimed while this worker ran it; result discarded", measurement_id)
    else:
        services.do_measurement_finished(measurement_id)
    return outcome


# Transient database trouble (a restarted server, a locked SQLite file) is retried; anything else fails the job
# with its reason (a user error or a bug: retrying would not help).
_TRANSIENT = (OperationalError, InterfaceError)


@shared_task(name="workers.tasks.advance_search", autoretry_for=_TRANSIENT, retry_backoff=1, retry_backoff_max=60,
             retry_jitter=True, max_retries=8)
def advance_search(job_id: int) -> str:
    """One orchestration step of a search job (idempotent: see searches/services/jobs.py)."""
    close_old_connections()
    try:
        return services.do_advance_search(job_id)
    except _TRANSIENT:
        raise
    except Exception as exc:
        logger.exception("search %s failed", job_id)
        services.do_fail_search(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"


@shared_task(name="workers.tasks.refit_cost_model", autoretry_for=_TRANSIENT, retry_backoff=1, retry_backoff_max=60,
             retry_jitter=True, max_retries=8)
def refit_cost_model(device_id: int, key: dict) -> str:
    """Refit the cost model of one measurement key (searches.models.MEASUREMENT_KEY_FIELDS) when its finished
    measurements changed; a no-op when they did not (idempotent). ~10 ms for 100 measurements."""
    close_old_connections()
    device = Device.objects.filter(pk=device_id).first()
    if device is None:
        logger.warning("device %s no longer exists", device_id)
        return "missing"
    try:
        settings_of_key = services.key_settings(key)
    except (ConfigError, KeyError, TypeError) as exc:
        logger.error("refit_cost_model: %r is not a measurement key: %s", key, exc)
        return "bad-key"
    result = services.do_refit_cost_model(device, settings_of_key)
    if result.fit is None:
        return "too-few"
    return "refitted" if result.refitted else "unchanged"


@shared_task(name="workers.tasks.reap_stale_work")
def reap_stale_work() -> dict:
    """Periodic (beat): re-queue or fail measurements whose worker died; kick searches whose step was lost. After the
    broker lost its data, every pending measurement whose message went with it is sent again and every active search
    is kicked, at this pass: at most the reaper interval (15 s) after the workers are back on the broker (kombu
    retries the connection at most 30 s apart), well within a minute."""
    close_old_connections()
    broker_lost = broker_lost_data("reap_stale_work")
    result = services.do_reap_measurements(broker_lost=broker_lost)
    result["searches_kicked"] = len(services.do_reap_searches(broker_lost=broker_lost))
    return result
