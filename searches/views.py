"""Pages of the dashboard: team searches, new search, search detail, candidate detail, devices and a device's cost
models.

The pages render what a first look needs; live data comes from the REST API (/api/v1/) through the page's script.
A search of another team is a 404 on every page, as in the API.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from lts_web.models import Membership, teams_of
from lts_web.numbers import significant
from lts_web.params import query_id
from models_zoo.proxy_checks.views import proxy_checks_of
from searches.api import POINT_COLUMNS, POINT_COLUMNS_FROM_CONFIG, queue_lengths, with_related
from searches.core.cost_model import MIN_OBSERVATIONS
from searches.core.evolution import SearchParams
from searches.core.policy import BATCH_DEFAULT, EXPLORATION_DEFAULT, MIN_GAIN_DEFAULT
from searches.core.profiling import BACKENDS, DEVICES, DTYPES, MODES, ProfileSettings
from searches.core.space import PRESETS
from searches.models import Candidate, Device, Measurement, SearchJob
from searches.permissions import can_change, visible_searches
from searches.serializers import SearchJobSerializer, SpacePreviewSerializer
from searches.services import candidate_objectives, measured_keys
from searches.specs import space_of

DASHBOARD_PAGE_SIZE = 25
# The "compare with" menu of a search lists this many of the team's most recent other searches.
COMPARE_CHOICES = 200
SPACE_FIELDS = ("n_layer", "d_model", "d_inner", "n_head", "vocab_size", "max_sequence_length", "dropatt")
PARAM_FIELDS = ("init_population", "mutations_per_parent", "num_crossovers", "num_random_mix", "max_unseen",
                "mutation_prob")
PROFILING_FIELDS = ("backend", "batch_size", "seq_len", "threads", "mode", "dtype", "device", "warmup",
                    "rel_tolerance", "min_repeats", "max_repeats", "max_seconds", "host_tolerance", "host_wait_s")

# Labels and hover help of the new-search form where the field name alone says too little.
PROFILING_LABELS = {"seq_len": ("sequence length", ""),
                    "warmup": ("untimed runs", "runs before the timed ones; the first one measures the peak memory"),
                    "rel_tolerance": ("latency tolerance", "repeat until the median's 95% interval is within this "
                                                           "fraction of it"),
                    "max_seconds": ("max timed seconds", "stop repeating after this many seconds of timed runs"),
                    "host_tolerance": ("host tolerance", "a timed run counts when the host-speed probe is within "
                                                         "this fraction of the fastest seen"),
                    "host_wait_s": ("host wait (s)", "seconds a measurement may wait out a slow host; 0: no check")}


def _progress(job: SearchJob) -> dict[str, Any]:
    """Generations done (each one recorded a hypervolume) out of the budget, and the measurement counts."""
    budget = job.spec["budget"]["generations"]
    done = len(job.hypervolumes)
    percent = 100 if job.status == SearchJob.Status.COMPLETED else min(100, round(100 * done / max(budget, 1)))
    counts = {"candidates": 0, "measured": 0, "measuring": 0, "failed": 0, "pareto": 0, **(job.counts or {})}
    latest = significant(job.hypervolumes[-1]["hypervolume"]) if job.hypervolumes else None
    return {"generations": done, "budget": budget, "percent": percent, "counts": counts, "hypervolume": latest,
            "measured_text": _measured_text(job, counts), "predictions_text": _predictions_text(counts)}


def coverage_spread(n: int) -> str:
    """How far a share near 90% measured on ``n`` measurements may be from the true one: one standard error of a
    binomial share, in percentage points (detail/main.js coverageSpread says the same)."""
    # Half up, as Math.round: round() would make 2.5 (n = 144) "2" here and "3" in the page's script.
    return f"±{math.floor(100 * math.sqrt(0.09 / n) + 0.5)} points" if n > 0 else ""


def _predictions_text(counts: dict[str, int]) -> str:
    """How the cost model's 90% intervals held in this search (detail/main.js predictionsText says the same live);
    "" before a predicted candidate was measured."""
    checked = counts.get("predictions_checked", 0)
    if not checked:
        return ""
    return (f"latency inside its 90% interval for {counts.get('latency_inside', 0)} of {checked} measured "
            f"candidates, peak memory for {counts.get('memory_inside', 0)} of {checked} "
            f"(over {checked}, {coverage_spread(checked)})")


def _measured_text(job: SearchJob, counts: dict[str, int]) -> str:
    """"12/40 measured"; measure "predicted": "measured N of M proposed, hardware time saved ~T", T the predicted
    candidates times the job's mean device time per measurement (detail/main.js measuredText says the same live)."""
    if job.spec.get("measure", "all") != "predicted":
        return f"{counts['measured']}/{counts['candidates']} measured"
    if job.spec.get("algorithm") == "scored":
        return f"measured {counts['measured']} of {space_of(job.spec).size:,} architectures in the space (the others only predicted, not kept)"
    text = f"measured {counts['measured']} of {counts['candidates']} proposed"
    predicted, measured = counts.get("predicted", 0), counts.get("hardware_measured", 0)
    if not predicted or not measured:
        return text
    return f"{text}, hardware time saved ~{_duration(predicted * job.hardware_seconds / measured)}"


def _duration(seconds: float) -> str:
    """Two significant figures in s, min or h (common.js duration)."""
    if seconds < 90:
        return f"{float(f'{seconds:.2g}'):g} s"
    if seconds < 5400:
        return f"{float(f'{seconds / 60:.2g}'):g} min"
    return f"{float(f'{seconds / 3600:.2g}'):g} h"


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The searches of the user's teams, newest first, filtered by status, owner and team; a constant number of
    queries whatever the number of searches or candidates (progress comes from job.counts, never a COUNT)."""
    teams = list(teams_of(request.user).order_by("name"))
    owners = list(get_user_model().objects.filter(memberships__team__in=teams).distinct().order_by("username")
                  .values_list("username", flat=True))
    jobs = with_related(visible_searches(request.user)).defer("rng_state").order_by("-created_at")
    status, owner, team = (request.GET.get(k, "") for k in ("status", "owner", "team"))
    if status in SearchJob.Status.values:
        jobs = jobs.filter(status=status)
    if owner:
        jobs = jobs.filter(owner__username=owner)
    team_id = query_id(request.GET, "team")
    if team_id is not None:
        jobs = jobs.filter(team_id=team_id)
    page = Paginator(jobs, DASHBOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"job": job, **_progress(job)} for job in page]
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "searches/dashboard.html", {
        "page": page, "rows": rows, "teams": teams, "owners": owners, "statuses": SearchJob.Status.choices,
        "selected": {"status": status, "owner": owner, "team": team}, "query": query.urlencode(),
    })


def _space_text(choices: Any) -> str:
    """A canonical space entry as the editor shows it: "range(128, 1024, 64)" or "2, 4, 8"."""
    if isinstance(choices, dict):
        return "range({})".format(", ".join(str(v) for v in choices["range"]))
    return ", ".join(str(v) for v in choices)


def _field(path: str, label: str, value: Any = None, *, kind: str = "int", choices: tuple[str, ...] = (),
           placeholder: str = "", help: str = "", hint: str = "") -> dict[str, Any]:
    """One input of the new-search form; ``path`` is the API's dotted error key (e.g. "profiling.seq_len"); ``help``
    is shown under the input, ``hint`` when hovering the label."""
    return {"path": path, "label": label, "value": value, "kind": kind, "choices": choices,
            "placeholder": placeholder, "help": help, "hint": hint}


@require_GET
def new_search(request: HttpRequest) -> HttpResponse:
    """The form posts to /api/v1/searches/ from the page's script, which shows the API's field errors in place."""
    presets = []
    for name, space in PRESETS.items():
        preview = SpacePreviewSerializer({"space": space}).data
        presets.append({"name": name, "size": preview["size"], "proxy_min": preview["proxy_min"],
                        "proxy_max": preview["proxy_max"],
                        "space": {k: _space_text(v) for k, v in preview["space"].items()}})
    devices = list(Device.objects.order_by("name"))
    lengths = queue_lengths(devices)
    online = [d.name for d in devices if d.is_online]
    p = ProfileSettings()
    choices = {"backend": BACKENDS, "mode": MODES, "dtype": DTYPES, "device": DEVICES}
    profiling = []
    for n in PROFILING_FIELDS:
        label, hint = PROFILING_LABELS.get(n, (n.replace("_", " "), ""))
        profiling.append(_field(f"profiling.{n}", label, getattr(p, n), hint=hint, choices=choices.get(n, ()),
                                kind="float" if isinstance(getattr(p, n), float) else "int"))
    defaults = {f.name: f.default for f in fields(SearchParams)}
    memberships = Membership.objects.filter(user=request.user).select_related("team").order_by("team__name")
    return render(request, "searches/new.html", {
        "presets": presets, "default_preset": "tiny" if "tiny" in PRESETS else next(iter(PRESETS)),
        "space_fields": SPACE_FIELDS, "teams": [m.team for m in memberships],
        "devices": [{"device": d, "queue_length": lengths.get(d.queue)} for d in devices],
        "default_device": online[0] if online else (devices[0].name if devices else ""),
        "constraint_fields": [
            _field("constraints.min_proxy", "min proxy (parameters)", kind="float", placeholder="none"),
            _field("constraints.max_proxy", "max proxy (parameters)", kind="float", placeholder="none"),
            _field("constraints.max_latency", "max latency (s)", kind="float", placeholder="none"),
            _field("constraints.max_memory", "max memory (MB)", kind="float", placeholder="none"),
        ],
        "profiling_fields": profiling,
        "budget_fields": [
            _field("budget.generations", "generations", defaults["generations"]),
            _field("budget.max_candidates", "max candidates", placeholder="no limit"),
            _field("budget.max_hardware_seconds", "max hardware seconds", kind="float", placeholder="no limit"),
        ],
        "param_fields": [*(_field(f"params.{n}", n.replace("_", " "), defaults[n],
                                  kind="float" if isinstance(defaults[n], float) else "int") for n in PARAM_FIELDS),
                         _field("params.exploration", "exploration share", EXPLORATION_DEFAULT, kind="float",
                                hint="with measure: predicted, the share of the other candidates measured anyway "
                                     "(seeded), 0 to 1"),
                         _field("params.batch", "scored: per round", BATCH_DEFAULT, kind="int",
                                hint="algorithm scored: architectures measured per round (generation), 1 to 1,000"),
                         _field("params.min_gain", "scored: smallest gain", MIN_GAIN_DEFAULT, kind="float",
                                hint="algorithm scored: stop a round when the best predicted hypervolume gain is "
                                     "below this share of the frontier's, 0 to 0.5")],
    })


# Its charts are WebGL (scattergl, for thousands of points): Plotly draws them with regl, which compiles its draw
# calls with Function(). The only page whose policy allows it.
@csp_update({"script-src": ["'unsafe-eval'"]})
@require_GET
def search_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(with_related(visible_searches(request.user)), pk=pk)
    others = (visible_searches(request.user).exclude(pk=job.pk).select_related("device").order_by("-created_at")
              .only("id", "name", "status", "device__name", "spec")[:COMPARE_CHOICES])
    compare = [{"id": o.id, "name": o.name, "status": o.status, "device": o.device.name if o.device else None}
               for o in others if o.needs_hardware]
    allowed = can_change(request.user, job)
    # URL templates for the script: "0" and "ARCHID" stand for a search id and an archid.
    urls = {"points": reverse("search-points", args=[job.pk]), "poll": reverse("candidate-list"),
            "frontier": reverse("search-frontier", args=[0]), "action": reverse("search-cancel", args=[0]),
            "detail": reverse("search-page", args=[0]), "candidate": reverse("candidate-page", args=[0, "ARCHID"])}
    page_data = {"job": SearchJobSerializer(job).data, "can_change": allowed, "finished": list(SearchJob.FINISHED),
                 "needs_hardware": job.needs_hardware, "urls": urls, "space_size": space_of(job.spec).size,
                 # the points' column names, as the API sends them; those a polled row carries in its config
                 "columns": list(POINT_COLUMNS), "columns_from_config": list(POINT_COLUMNS_FROM_CONFIG)}
    return render(request, "searches/detail.html", {"job": job, "progress": _progress(job), "can_change": allowed,
                                                    "compare": compare, "page_data": page_data,
                                                    "proxy_checks": proxy_checks_of(request.user, job),
                                                    "finished_statuses": SearchJob.FINISHED})


@require_GET
def candidate_detail(request: HttpRequest, pk: int, archid: str) -> HttpResponse:
    job = get_object_or_404(with_related(visible_searches(request.user)), pk=pk)
    candidate = get_object_or_404(job.candidates.select_related("measurement__device"), archid=archid)
    in_job = {c.archid: c for c in job.candidates.filter(archid__in=candidate.parents)}
    parents = [{"archid": a, "candidate": in_job.get(a)} for a in candidate.parents]
    measurements = Measurement.objects.filter(archid=archid).select_related("device").order_by("device__name", "-id")
    elsewhere = (Candidate.objects.filter(archid=archid, job__in=visible_searches(request.user))
                 .exclude(job=job).select_related("job").order_by("-job__created_at")[:50])
    measured = candidate_objectives(candidate) or {}
    # Whether the measurement landed inside the interval predicted before it (None while not measured): a value at an
    # edge rounds to the edge's figure, so the page says it rather than leave it to the digits.
    predicted = {name: {"value": v, "low": lo, "high": hi,
                        "inside": lo <= measured[name] <= hi if name in measured else None}
                 for name, (v, lo, hi) in (candidate.predicted or {}).items()}
    return render(request, "searches/candidate.html", {
        "job": job, "candidate": candidate, "parents": parents, "measurements": measurements,
        "elsewhere": elsewhere, "config": candidate.config, "predicted": predicted,
        "predicted_note": "not measured" if candidate.status == Candidate.Status.PREDICTED else "before it was measured",
        "can_measure": candidate.status == Candidate.Status.PREDICTED and job.status != SearchJob.Status.CANCELLED
        and can_change(request.user, job),
    })


@require_GET
def devices(request: HttpRequest) -> HttpResponse:
    """Every device (devices serve all teams), its queue, and how many of the user's teams' searches use it."""
    rows = list(Device.objects.order_by("name"))
    lengths = queue_lengths(rows)
    active = dict(visible_searches(request.user).filter(status__in=SearchJob.ACTIVE, device__isnull=False)
                  .order_by().values_list("device_id").annotate(n=Count("id")))
    return render(request, "searches/devices.html", {
        "offline_after": settings.LTS_DEVICE_OFFLINE_AFTER_S,
        "devices": [{"device": d, "queue_length": lengths.get(d.queue), "active_searches": active.get(d.pk, 0)}
                    for d in rows],
    })


@require_GET
def device_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A device's cost models: for each measurement key measured on it, the stored model's held-out error and a
    predicted-vs-measured chart per target, or how many measurements it still needs. Reads stored fits only."""
    device = get_object_or_404(Device, name=name)
    keys, charts = [], []
    for key in measured_keys(device):
        fit, chart = key["fit"], None
        if fit is not None:
            heldout = fit.model.get("heldout") or {}
            chart = {"id": len(charts), **{k: heldout.get(k, []) for k in
                                            ("archid", "latency_s", "latency_pred", "memory_mb", "memory_pred")}}
            charts.append(chart)
        keys.append({"key": key, "measurements": key["measurements"], "fit": fit, "chart": chart,
                     "targets": _fit_figures(fit) if fit is not None else [],
                     "later_spread": coverage_spread(fit.later_measurements) if fit is not None else ""})
    return render(request, "searches/device.html", {"device": device, "keys": keys, "charts": charts,
                                                    "need": MIN_OBSERVATIONS})


def _fit_figures(fit) -> list[dict[str, Any]]:
    """One row per target: held-out MAPE and interval coverage in percent, Spearman, the same on later measurements,
    the family."""
    def percent(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}%"

    return [{"target": label, "mape": percent(getattr(fit, f"{t}_mape")),
             "spearman": "–" if getattr(fit, f"{t}_spearman") is None else f"{getattr(fit, f'{t}_spearman'):.3f}",
             "coverage": percent(getattr(fit, f"{t}_coverage")),
             "later_mape": percent(getattr(fit, f"{t}_later_mape")),
             "later_coverage": percent(getattr(fit, f"{t}_later_coverage")), "family": fit.families.get(t, "")}
            for t, label in (("latency", "latency"), ("memory", "peak memory"))]
