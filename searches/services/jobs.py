"""Search jobs: create, advance generation by generation, pause, resume, cancel, clone, retry, delete, reap.

Concurrency: every change to a job and its candidates happens inside a transaction holding the job's row lock
(SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions serialize writers), so two workers advancing
the same job run one after the other, and the second finds nothing left to do. Candidate rows are unique per
(job, archid), so even a step that ran twice could not duplicate one. Each change bumps ``job.revision`` and stamps
the changed candidates with it: the `after` cursor of the live API.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from lts_web import queueing
from lts_web.errors import Conflict
from notifications.services import notify_search
from searches.core.arch import Architecture
from searches.core.cost_model import NotEnoughData
from searches.core.evolution import Evaluated, new_rng_state
from searches.core.pareto import MAXIMIZE, OBJECTIVES, hypervolume, pareto_mask
from searches.core.policy import choose_to_measure, design, design_top_up, policy_rng, score_space
from searches.models import Candidate, Device, Measurement, SearchJob
from searches.services.measurements import do_request_measurement, do_retry_measurement
from searches.services.predictor import cache_cutoff, measurement_key, snapshot_cost_model
from searches.specs import (
    exploration,
    measure_policy,
    profile_settings,
    proposer,
    scoring_params,
    search_params,
    space_of,
)

__all__ = [
    "candidate_objectives",
    "do_advance_search",
    "do_cancel_search",
    "do_clone_search",
    "do_create_search",
    "do_delete_search",
    "do_fail_search",
    "do_measure_candidate",
    "do_measurement_finished",
    "do_pause_search",
    "do_reap_searches",
    "do_resume_search",
    "do_retry_failed",
]

logger = logging.getLogger(__name__)
S = SearchJob.Status
C = Candidate.Status
# Hypervolume reference: 0 parameters for the proxy, twice the worst latency/memory of the first completed
# generation for the others; fixed per job, so the per-generation figures are comparable.
_HV_MARGIN = 2.0


def _enqueue_advance(job_id: int) -> None:
    queueing.send(queueing.ADVANCE_SEARCH, [job_id])


def _locked(job_id: int) -> SearchJob | None:
    return SearchJob.objects.select_for_update(of=("self",)).select_related("device").filter(pk=job_id).first()


def _bump(job: SearchJob) -> int:
    job.revision += 1
    return job.revision


def _refresh_counts(job: SearchJob) -> None:
    """The progress counters shown everywhere: one aggregate query, and for a search that predicts, one more for how
    its predictions held (called before each save of a step)."""
    job.counts = job.candidates.aggregate(
        candidates=Count("id"), measured=Count("id", filter=Q(status=C.MEASURED)),
        measuring=Count("id", filter=Q(status=C.MEASURING)), failed=Count("id", filter=Q(status=C.FAILED)),
        pareto=Count("id", filter=Q(is_pareto=True)), predicted=Count("id", filter=Q(status=C.PREDICTED)),
        # measured on the device for this job (not from the cache): hardware_seconds / this = the mean wall time of
        # one measurement, behind the page's "hardware time saved"
        hardware_measured=Count("id", filter=Q(status=C.MEASURED, cache_hit=False)),
    )
    job.counts.update(_predictions_held(job))


def _predictions_held(job: SearchJob) -> dict[str, int]:
    """The check of the cost model's intervals in this search: of the measured candidates that were predicted before
    they were measured, how many measured latencies and peak memories lay inside their predicted intervals. A search
    that measures everything predicted nothing: no query."""
    out = {"predictions_checked": 0, "latency_inside": 0, "memory_inside": 0}
    if measure_policy(job.spec) != "predicted":
        return out
    rows = (job.candidates.filter(status=C.MEASURED, predicted__isnull=False, measurement__status=Measurement.Status.DONE)
            .values_list("predicted", "measurement__latency_median_s", "measurement__peak_memory_mb"))
    for predicted, latency, memory in rows:
        if not predicted:
            continue
        out["predictions_checked"] += 1
        for name, value in (("latency", latency), ("memory", memory)):
            _, low, high = predicted[name]
            out[f"{name}_inside"] += int(low <= value <= high)
    return out


def candidate_objectives(candidate: Candidate) -> dict[str, float] | None:
    """proxy, latency (median seconds) and memory (peak MB) of a measured candidate; None when not measured."""
    if candidate.status != C.MEASURED:
        return None
    values = {"proxy": float(candidate.non_embedding_params)}
    m = candidate.measurement
    if m is not None and m.status == Measurement.Status.DONE:
        values["latency"] = m.latency_median_s
        values["memory"] = m.peak_memory_mb
    return values


# ---- create -------------------------------------------------------------------------------------------------------

def do_create_search(*, owner, team, name: str, spec: dict[str, Any]) -> SearchJob:
    """``spec`` must come from searches.specs.normalize_spec; its device must exist (the serializer checks)."""
    device = Device.objects.get(name=spec["device"]) if spec.get("device") else None
    with transaction.atomic():
        job = SearchJob.objects.create(owner=owner, team=team, name=name, spec=spec, device=device,
                                       rng_state=new_rng_state(spec["seed"]))
        _enqueue_advance(job.pk)
    return job


def do_clone_search(job: SearchJob, *, owner, name: str | None = None) -> SearchJob:
    return do_create_search(owner=owner, team=job.team, name=name or f"{job.name} (copy)", spec=job.spec)


# ---- the orchestration step ---------------------------------------------------------------------------------------

def do_advance_search(job_id: int) -> str:
    """One idempotent orchestration step. Re-running it when nothing changed changes nothing."""
    with transaction.atomic():
        job = _locked(job_id)
        if job is None:
            logger.warning("search %s no longer exists", job_id)
            return "missing"
        if job.status not in SearchJob.ACTIVE:
            return job.status
        now = timezone.now()
        job.advanced_at = now
        if job.started_at is None:
            job.started_at = now
        changed = _sync_candidates(job)
        if job.candidates.filter(status=C.MEASURING).exists():
            if changed:
                _update_frontier(job)
            online = job.device is None or job.device.is_online
            _save(job, status=S.RUNNING if online else S.WAITING)
            return "measuring"
        if job.generation > len(job.hypervolumes):
            _update_frontier(job, record=True)
        elif changed:  # measurements asked for after the last generation (retry, measure on demand) finished
            _update_frontier(job)
        reason = _budget_spent(job)
        if reason:
            _finish(job, S.COMPLETED, reason)
            return "completed"
        proposed = _propose(job)
        if not proposed:
            _finish(job, S.COMPLETED, "no architecture left that could add to the frontier"
                    if job.spec["algorithm"] == "scored" else "no new architecture left to propose in this space")
            return "completed"
        waiting = job.candidates.filter(status=C.MEASURING).exists()
        online = job.device is None or job.device.is_online
        _save(job, status=S.RUNNING if online or not waiting else S.WAITING)
        if not waiting:  # every new candidate came from the cache (or needs no hardware): next generation now
            _enqueue_advance(job.pk)
        return f"generation {job.generation}"


def _save(job: SearchJob, *, status: str) -> None:
    if job.status != status:
        _bump(job)
        job.status = status
    _refresh_counts(job)
    job.save()


def _finish(job: SearchJob, status: str, reason: str = "") -> None:
    _bump(job)
    job.status = status
    job.finished_at = timezone.now()
    if status == S.FAILED:
        job.error = reason
    elif reason:
        logger.info("search %s finished: %s", job.pk, reason)
    _refresh_counts(job)
    job.save()
    notify_search(job.pk, status)  # after the commit: search.finished / search.failed


def _sync_candidates(job: SearchJob) -> bool:
    """Measuring candidates whose measurement finished become measured (with feasibility) or failed."""
    rows = list(job.candidates.filter(status=C.MEASURING).select_related("measurement"))
    if not rows:
        return False
    constraints = search_params(job.spec).constraints
    changed: list[Candidate] = []
    for c in rows:
        m = c.measurement
        if m is None:  # the shared row was removed (a cancelled twin job): ask again
            arch = Architecture.from_dict(c.config)
            request = do_request_measurement(arch, job.device, profile_settings(job.spec))
            c.measurement = request.measurement
            m = c.measurement
        if m.status == Measurement.Status.DONE:
            c.status = C.MEASURED
            values = {"latency": m.latency_median_s, "memory": m.peak_memory_mb}
            c.feasible = all(values[n] <= hi for n, (_, hi) in constraints.bounds().items() if n in values and hi is not None)
        elif m.status == Measurement.Status.FAILED:
            c.status = C.FAILED
        else:
            continue
        changed.append(c)
    if changed:
        revision = _bump(job)
        for c in changed:
            c.revision = revision
        Candidate.objects.bulk_update(changed, ["status", "feasible", "revision", "measurement"])
        spent = job.candidates.filter(cache_hit=False, status=C.MEASURED).aggregate(s=Sum("measurement__wall_s"))["s"]
        job.hardware_seconds = float(spent or 0.0)
    return bool(changed)


def _update_frontier(job: SearchJob, *, record: bool = False) -> None:
    """Recompute is_pareto over the job's measured, feasible candidates; with record, append the hypervolume."""
    names = job.objectives
    directions = [OBJECTIVES[n] for n in names]
    measured = list(job.candidates.filter(status=C.MEASURED, feasible=True).select_related("measurement"))
    points = [[candidate_objectives(c)[n] for n in names] for c in measured]
    mask = pareto_mask(points, directions) if measured else []
    flips = [c for c, on in zip(measured, mask) if c.is_pareto != bool(on)]
    stale = job.candidates.filter(is_pareto=True).exclude(pk__in=[c.pk for c in measured])
    if flips or stale.exists():
        revision = _bump(job)
        for c in flips:
            c.is_pareto, c.revision = not c.is_pareto, revision
        Candidate.objects.bulk_update(flips, ["is_pareto", "revision"])
        stale.update(is_pareto=False, revision=revision)
    if not record:
        return
    entry: dict[str, Any] = {"generation": len(job.hypervolumes), "frontier_size": int(sum(mask)),
                             "candidates": job.candidates.count(), "hypervolume": 0.0}
    reference = job.hypervolumes[0]["reference"] if job.hypervolumes else None
    if reference is None and measured:
        reference = [0.0 if OBJECTIVES[n] == MAXIMIZE else _HV_MARGIN * max(p[i] for p in points)
                     for i, n in enumerate(names)]
    if reference is not None and measured:
        front = [p for p, on in zip(points, mask) if on]
        entry["hypervolume"] = hypervolume(front, reference, directions)
    entry["reference"] = reference
    job.hypervolumes = [*job.hypervolumes, entry]
    _bump(job)


def _budget_spent(job: SearchJob) -> str:
    budget = job.spec["budget"]
    if job.generation >= budget["generations"]:
        return f"{budget['generations']} generations done"
    if budget["max_candidates"] and job.candidates.count() >= budget["max_candidates"]:
        return f"{budget['max_candidates']} candidates reached"
    if budget["max_hardware_seconds"] and job.hardware_seconds >= budget["max_hardware_seconds"]:
        return f"{budget['max_hardware_seconds']} s of hardware time spent"
    return ""


def _history(job: SearchJob) -> list[Evaluated]:
    """What the proposer sees. Measured candidates carry their measured values; predicted ones (measure
    "predicted") their point predictions, so that the evolution's parents and its random stream follow from the
    seed and the stored rows alone, as with "all". This is the only place a predicted value stands in for a
    measured one: the frontier, the hypervolume and every export read candidate_objectives (measured only)."""
    rows = job.candidates.select_related("measurement").order_by("generation", "position")
    return [Evaluated(Architecture.from_dict(c.config), candidate_objectives(c) or _point_prediction(c), c.generation)
            for c in rows]


def _point_prediction(candidate: Candidate) -> dict[str, float] | None:
    if candidate.status != C.PREDICTED or not candidate.predicted:
        return None
    return {"proxy": float(candidate.non_embedding_params),
            **{name: float(values[0]) for name, values in candidate.predicted.items()}}


def _cached_archids(job: SearchJob, profile) -> set[str]:
    """Archids the key's cache held when the job started (its cache_cutoff): what its model may learn from."""
    return set(Measurement.objects.filter(device=job.device, status=Measurement.Status.DONE, id__lte=job.cache_cutoff,
                                          **measurement_key(profile)).values_list("archid", flat=True))


def _measured_front(job: SearchJob) -> list[list[float]]:
    """The job's measured feasible candidates as points of its objectives: the frontier a prediction must beat."""
    names = job.objectives
    return [[candidate_objectives(c)[n] for n in names]
            for c in job.candidates.filter(status=C.MEASURED, feasible=True).select_related("measurement")]


def _as_predictions(predicted: dict, indices) -> list[dict]:
    """{"latency": [value, low, high], "memory": [...]} of each of ``indices`` in a CostModel.predict result."""
    return [{target: [float(predicted[target][j][i]) for j in range(3)] for target in predicted} for i in indices]


def _design_fill(job: SearchJob, profile, have: int, coming: int, room: int | None, seen: set[str],
                 rng) -> list[Architecture]:
    """While the job's cost model lacks measurements: space-filling design architectures (at most ``room``) that top
    the key up to the model's minimum, none of ``seen`` nor of what the job's model already holds from the cache."""
    wanted = design_top_up(have, coming)
    if room is not None:
        wanted = min(wanted, room)
    seen = seen | _cached_archids(job, profile)  # in the model already; later rows of others: not seen
    return design(space_of(job.spec), wanted, rng, exclude=sorted(seen),
                  constraints=search_params(job.spec).constraints)


def _plan(job: SearchJob, archs: list[Architecture], room: int | None) -> tuple[list[bool], list[dict | None],
                                                                             list[Architecture]]:
    """measure "predicted": which of the generation's ``archs`` to measure, their predictions, and the design
    architectures to add (at most ``room``) while the job's cost model lacks measurements.

    The model is fit on the key's finished measurements up to ``job.cache_cutoff`` and the job's own measured
    candidates (snapshot_cost_model), the exploration draws come from (seed, generation): the step is a function of
    the seed, the cache at start and the job's rows, so a replayed step (a killed worker's) decides the same."""
    profile = profile_settings(job.spec)
    # A subquery, not a list: a search of 100,000 candidates would pass as many SQL parameters.
    own = job.candidates.filter(status=C.MEASURED).values("measurement_id")
    cached = set(Measurement.objects.filter(device=job.device, status=Measurement.Status.DONE, id__lte=job.cache_cutoff,
                                            archid__in=[a.archid for a in archs], **measurement_key(profile))
                 .values_list("archid", flat=True))
    rng = policy_rng(job.spec["seed"], job.generation)
    try:
        model = snapshot_cost_model(job.device, profile, cutoff=job.cache_cutoff, measurement_ids=own)
    except NotEnoughData as exc:
        # No model yet: nothing can be ruled out, so the generation is measured whole (with no measured frontier
        # the policy would measure every candidate anyway), topped up with a space-filling design to the model's
        # minimum, spread over the proxy range and the shapes, so the next generation has a model.
        coming = sum(a.archid not in cached for a in archs)
        seen = set(job.candidates.values_list("archid", flat=True)) | {a.archid for a in archs}
        extra = _design_fill(job, profile, exc.have, coming, room, seen, rng)
        return [True] * len(archs), [None] * len(archs), extra
    rest = [i for i, a in enumerate(archs) if a.archid not in cached]
    predicted = model.predict([archs[i] for i in rest])
    predictions: list[dict | None] = [None] * len(archs)
    for i, prediction in zip(rest, _as_predictions(predicted, range(len(rest)))):
        predictions[i] = prediction
    choice = choose_to_measure([archs[i] for i in rest], [predictions[i] for i in rest], _measured_front(job),
                               job.objectives, rng,
                               constraints=search_params(job.spec).constraints, exploration=exploration(job.spec))
    measure = [True] * len(archs)  # cache hits: measured already, at no cost
    for i, chosen in zip(rest, choice):
        measure[i] = chosen
    return measure, predictions, []


def _score(job: SearchJob, room: int | None) -> tuple[list[Architecture], list[dict | None], str]:
    """The algorithm "scored": the architectures of the space to measure this round, their predictions and their
    origin. Until the key has a cost model, a space-filling design (as _plan); then every architecture of the space
    the job has not proposed yet is predicted and score_space picks the round's batch by the hypervolume it can add.
    A function of the seed, the cache at start and the job's rows, like _plan."""
    spec = job.spec
    profile = profile_settings(spec)
    constraints = search_params(spec).constraints
    own = job.candidates.filter(status=C.MEASURED).values("measurement_id")
    seen = set(job.candidates.values_list("archid", flat=True))
    rng = policy_rng(spec["seed"], job.generation)
    batch, min_gain = scoring_params(spec)
    if room is not None:
        batch = min(batch, room)
    if batch <= 0:
        return [], [], "scored"
    try:
        model = snapshot_cost_model(job.device, profile, cutoff=job.cache_cutoff, measurement_ids=own)
    except NotEnoughData as exc:
        extra = _design_fill(job, profile, exc.have, 0, room, seen, rng)
        return extra, [None] * len(extra), "design"
    rest = [a for a in space_of(spec) if a.archid not in seen and constraints.proxy_ok(a.non_embedding_params)]
    predicted = model.predict(rest)
    order = score_space(rest, predicted, _measured_front(job), job.objectives, rng, k=batch, min_gain=min_gain,
                        exploration=exploration(spec), constraints=constraints)
    return [rest[i] for i in order], _as_predictions(predicted, order), "scored"


def _propose(job: SearchJob) -> int:
    """Propose, insert and dispatch the next generation. Returns how many candidates it added."""
    spec = job.spec
    limit = spec["budget"]["max_candidates"]
    generation = job.generation
    hardware = job.needs_hardware
    profile = profile_settings(spec) if hardware else None
    predicting = hardware and measure_policy(spec) == "predicted"
    if predicting and job.cache_cutoff is None:  # the cache this job may learn from: what was measured when it started
        job.cache_cutoff = cache_cutoff(job.device, profile)
    if spec["algorithm"] == "scored":
        room = int(limit) - job.candidates.count() if limit else None
        archs, predictions, origin = _score(job, room)
        proposals = [(a, origin, []) for a in archs]
        measure = [True] * len(proposals)
        batch = None
    else:
        batch = proposer(spec)(_history(job), space_of(spec), search_params(spec), job.rng_state)
        candidates = list(batch.candidates)
        if limit:
            candidates = candidates[: max(0, int(limit) - job.candidates.count())]
        proposals = [(p.arch, p.origin, list(p.parents)) for p in candidates]
        measure, predictions = [True] * len(proposals), [None] * len(proposals)
    revision = _bump(job)
    rows = []
    if batch is not None and predicting and proposals:
        room = int(limit) - job.candidates.count() - len(proposals) if limit else None
        measure, predictions, extra = _plan(job, [a for a, _, _ in proposals], room)
        proposals += [(a, "design", []) for a in extra]
        measure += [True] * len(extra)
        predictions += [None] * len(extra)
    for position, (arch, origin, parents) in enumerate(proposals):
        row = Candidate(
            job=job, archid=arch.archid, config=arch.to_dict(), generation=generation, position=position,
            origin=origin, parents=parents, n_layer=arch.n_layer, d_model=arch.d_model,
            d_inner=arch.d_inner, n_head=arch.n_head, non_embedding_params=arch.non_embedding_params,
            total_params=arch.total_params, revision=revision, predicted=predictions[position],
        )
        if hardware and measure[position]:
            request = do_request_measurement(arch, job.device, profile)
            row.measurement, row.cache_hit = request.measurement, request.cached
        elif hardware:
            row.status = C.PREDICTED  # no measurement: never a measured value, never on the frontier
        else:
            row.status, row.feasible = C.MEASURED, True
        rows.append(row)
    Candidate.objects.bulk_create(rows, ignore_conflicts=True)  # unique (job, archid): a replay adds nothing
    job.generation = generation + 1
    if batch is not None:
        job.rng_state = batch.rng_state
        job.dropped_infeasible += batch.dropped_infeasible
    if hardware and rows:
        _sync_candidates(job)  # cache hits are measured already
    return len(rows)


def do_measure_candidate(candidate: Candidate) -> None:
    """Measure a predicted candidate now (the page's button, POST .../measure/). Conflict("cannot measure: why")
    when it is not predicted: a second call (or a concurrent one, which waits for the job's lock) finds it measuring
    and changes nothing. A finished job runs again until the measurement lands, as after a retry; a paused one
    measures it when resumed."""
    with transaction.atomic():
        job = _locked(candidate.job_id)
        if job is None:
            raise Conflict("cannot measure: the search no longer exists")
        if job.status == S.CANCELLED:
            raise Conflict("cannot measure: the search was cancelled")
        row = job.candidates.filter(pk=candidate.pk).first()
        if row is None:
            raise Conflict("cannot measure: the candidate no longer exists")
        if row.status != C.PREDICTED:
            raise Conflict(f"cannot measure: the candidate is {row.status}, not predicted")
        request = do_request_measurement(Architecture.from_dict(row.config), job.device, profile_settings(job.spec))
        revision = _bump(job)
        updated = job.candidates.filter(pk=row.pk, status=C.PREDICTED).update(
            status=C.MEASURING, measurement=request.measurement, cache_hit=request.cached, revision=revision)
        if not updated:
            raise Conflict(f"cannot measure: the candidate is {row.status}, not predicted")
        if job.status in (S.COMPLETED, S.FAILED):
            job.status, job.finished_at, job.error = S.RUNNING, None, ""
        _refresh_counts(job)
        job.save()
        if job.status in SearchJob.ACTIVE:
            _enqueue_advance(job.pk)  # a cache hit is measured at once; a new measurement wakes the job when done


# ---- lifecycle ----------------------------------------------------------------------------------------------------

def _refused(job: SearchJob, locked: SearchJob | None, verb: str) -> Conflict:
    return Conflict(f"cannot {verb} a search that is {(locked or job).status}")


def do_pause_search(job: SearchJob) -> SearchJob:
    """Conflict unless the search is active."""
    with transaction.atomic():
        locked = _locked(job.pk)
        if locked is None or locked.status not in SearchJob.ACTIVE:
            raise _refused(job, locked, "pause")
        _bump(locked)
        locked.status = S.PAUSED
        locked.save()
    return locked


def do_resume_search(job: SearchJob) -> SearchJob:
    """Continue from the stored history and RNG state: the same architectures as an uninterrupted run. Conflict
    unless the search is paused."""
    with transaction.atomic():
        locked = _locked(job.pk)
        if locked is None or locked.status != S.PAUSED:
            raise _refused(job, locked, "resume")
        _bump(locked)
        locked.status = S.RUNNING
        locked.save()
        _enqueue_advance(locked.pk)
    return locked


def do_cancel_search(job: SearchJob) -> SearchJob:
    """Stop the job; revoke measurements that no other active job waits for. Conflict when it had finished."""
    with transaction.atomic():
        locked = _locked(job.pk)
        if locked is None or locked.status in SearchJob.FINISHED:
            raise _refused(job, locked, "cancel")
        measuring = list(locked.candidates.filter(status=C.MEASURING).values_list("measurement_id", flat=True))
        revision = _bump(locked)
        locked.candidates.filter(status=C.MEASURING).update(status=C.CANCELLED, revision=revision)
        _finish(locked, S.CANCELLED)
        _revoke_unshared(measuring, exclude_job=locked.pk)
    return locked


def _revoke_unshared(measurement_ids: Iterable[int | None], exclude_job: int) -> None:
    ids = [i for i in measurement_ids if i]
    shared = set(
        Candidate.objects.filter(measurement_id__in=ids, status=C.MEASURING, job__status__in=SearchJob.ACTIVE)
        .exclude(job_id=exclude_job).values_list("measurement_id", flat=True)
    )
    unshared = Measurement.objects.filter(pk__in=[i for i in ids if i not in shared],
                                          status__in=[Measurement.Status.PENDING, Measurement.Status.RUNNING])
    for m in unshared:
        if m.task_id:
            queueing.revoke(m.task_id, terminate=m.status == Measurement.Status.RUNNING)
    # Forget them: the cache must not keep a half-made row; a later request creates and measures it afresh.
    unshared.delete()


def do_retry_failed(job: SearchJob) -> int:
    """Measure the job's failed candidates again (how many); the job runs again if it had finished. Conflict when
    the job was cancelled or has no failed candidate."""
    with transaction.atomic():
        locked = _locked(job.pk)
        if locked is None or locked.status == S.CANCELLED:
            raise _refused(job, locked, "retry (nothing failed in)")
        failed = list(locked.candidates.filter(status=C.FAILED).select_related("measurement"))
        if not failed:
            raise _refused(job, locked, "retry (nothing failed in)")
        revision = _bump(locked)
        for c in failed:
            if c.measurement and c.measurement.status == Measurement.Status.FAILED:
                do_retry_measurement(c.measurement)
            c.status, c.revision = C.MEASURING, revision
        Candidate.objects.bulk_update(failed, ["status", "revision"])
        if locked.status in (S.COMPLETED, S.FAILED):
            locked.status, locked.finished_at, locked.error = S.RUNNING, None, ""
        _refresh_counts(locked)
        locked.save()
        _enqueue_advance(locked.pk)
    return len(failed)


def do_delete_search(job: SearchJob) -> None:
    with contextlib.suppress(Conflict):  # a finished search has nothing to stop
        do_cancel_search(job)
    SearchJob.objects.filter(pk=job.pk).delete()  # candidates cascade; shared measurements stay


def do_fail_search(job_id: int, reason: str) -> None:
    with transaction.atomic():
        job = _locked(job_id)
        if job is not None and job.status not in SearchJob.FINISHED:
            _finish(job, S.FAILED, reason[:4000])


# ---- notifications and the reaper ---------------------------------------------------------------------------------

def do_measurement_finished(measurement_id: int) -> list[int]:
    """Wake the active jobs waiting for this measurement."""
    jobs = list(
        Candidate.objects.filter(measurement_id=measurement_id, status=C.MEASURING, job__status__in=SearchJob.ACTIVE)
        .values_list("job_id", flat=True).distinct()
    )
    for job_id in jobs:
        _enqueue_advance(job_id)
    return jobs


def do_reap_searches(*, broker_lost: bool = False) -> list[int]:
    """Active jobs whose last orchestration step is older than LTS_JOB_STALL_S get another step (lost messages,
    dead workers, notifications that never came, devices that came back); after the broker lost its data
    (searches.queues.broker_lost_data) every active job gets one at once: its step message may have been lost with
    it. A step is idempotent, so one too many changes nothing."""
    stale = timezone.now() if broker_lost else timezone.now() - timedelta(seconds=settings.LTS_JOB_STALL_S)
    jobs = list(SearchJob.objects.filter(status__in=SearchJob.ACTIVE, advanced_at__lt=stale).values_list("pk", flat=True))
    jobs += list(SearchJob.objects.filter(status=S.QUEUED, advanced_at__isnull=True,
                                          created_at__lt=stale).values_list("pk", flat=True))
    for job_id in jobs:
        SearchJob.objects.filter(pk=job_id).update(advanced_at=timezone.now())  # one kick per stall period
        _enqueue_advance(job_id)
    return jobs
