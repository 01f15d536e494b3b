"""Pages of proxy checks: the list with the form to start one, and a check's page (scatter, coefficients with
intervals, what they mean, every model with its runs). Another team's check is a 404, as in the API; cancel and delete
need its owner or a team admin (403)."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lts_web.models import teams_of
from lts_web.params import query_id
from lts_web.throttling import throttle_start_work
from models_zoo.models import Dataset
from models_zoo.permissions import can_change, visible
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.api import with_members
from models_zoo.proxy_checks.core import PREDICTORS
from models_zoo.proxy_checks.forms import ProxyCheckForm
from models_zoo.proxy_checks.models import ProxyCheck
from models_zoo.settings_text import settings_items
from searches.core.arch import ConfigError
from searches.models import SearchJob
from searches.permissions import visible_searches

LIST_LIMIT = 200
# The form offers this many of the teams' most recent finished searches.
SEARCH_CHOICES = 100


def _initial(request: HttpRequest, teams: list) -> dict[str, Any]:
    """?search=ID (the search page's link): its candidates when it has finished, else its preset or its space."""
    initial: dict[str, Any] = {"team": teams[0].pk if teams else None, "source": "preset:tiny"}
    search_id = query_id(request.GET, "search")
    job = visible_searches(request.user).filter(pk=search_id).first() if search_id is not None else None
    if job is not None:
        if job.status in SearchJob.FINISHED:
            initial["source"] = f"search:{job.pk}"
        elif job.spec.get("preset"):
            initial["source"] = f"preset:{job.spec['preset']}"
        else:
            initial.update(source="space", space=json.dumps(job.spec["space"]))
        initial["team"] = job.team_id
    return initial


@require_http_methods(["GET", "POST"])
@throttle_start_work
def check_list(request: HttpRequest) -> HttpResponse:
    teams = list(teams_of(request.user))
    datasets = list(visible(Dataset, request.user).select_related("team").order_by("name"))
    searches = list(visible_searches(request.user).filter(status__in=SearchJob.FINISHED)
                    .only("id", "name", "counts").order_by("-created_at")[:SEARCH_CHOICES])
    kwargs = {"teams": teams, "datasets": datasets, "searches": searches}
    if request.method == "POST":
        form = ProxyCheckForm(request.POST, **kwargs)
        if form.is_valid():
            data = form.cleaned_data
            source = form.source_kwargs()
            if "search_id" in source:
                source = {"search": next(s for s in searches if s.pk == source.pop("search_id"))}
            try:
                check = services.do_create_proxy_check(
                    owner=request.user, team=next(t for t in teams if t.pk == data["team"]),
                    dataset=next(d for d in datasets if d.pk == data["dataset"]), tokenizer=data["tokenizer"],
                    max_tokens=data["max_tokens"], sample_size=data["sample_size"], seed=data["seed"],
                    config=form.train_config(), compare_budget=data["compare_budget"], name=data["name"], **source)
            except ConfigError as exc:
                own = {f"config.{k}": k for k in ("seq_len", "batch_size", "lr")}  # settings with their own input
                form.add_service_errors(ConfigError({own.get(k, k): v for k, v in exc.errors.items()}),
                                        {"config": "extra", "space": "space", "search": "source", "preset": "source"})
            else:
                messages.success(request, f"Queued {len(check.budgets) * check.sample_size} training runs.")
                return redirect("proxy-check", pk=check.pk)
    else:
        form = ProxyCheckForm(initial=_initial(request, teams), **kwargs)
    checks = with_members(visible(ProxyCheck, request.user)).order_by("-created_at")[:LIST_LIMIT]
    return render(request, "proxy_checks/list.html", {
        "checks": [{"check": c, "headline": headline(c)} for c in checks], "form": form,
        "has_datasets": bool(datasets)}, status=400 if request.method == "POST" else 200)


def headline(check: ProxyCheck) -> dict[str, Any] | None:
    """The proxy's rho at the largest budget with a defined coefficient, for lists and the search page."""
    budgets = [b for b in (check.result or {}).get("budgets", [])
               if b["predictors"]["proxy"]["spearman"]["estimate"] is not None]
    if not budgets:
        return None
    b = budgets[-1]
    return {"tokens": b["tokens"], "n": b["n"], **b["predictors"]["proxy"]["spearman"]}


def proxy_checks_of(user, job: SearchJob, limit: int = 10) -> list[dict[str, Any]]:
    """The checks (visible to ``user``) drawn from this search or from its space, newest first, with headlines."""
    key = services.space_key(job.spec["space"])
    checks = (with_members(visible(ProxyCheck, user)).filter(Q(search=job) | Q(space_key=key))
              .order_by("-created_at")[:limit])
    return [{"check": c, "headline": headline(c)} for c in checks]


def _chart(check: ProxyCheck, rows: list[dict[str, Any]]) -> dict[str, Any]:
    points = []
    for row in rows:
        for run in row["runs"]:
            if run["status"] == "completed" and run["val_ppl"] is not None:
                points.append({"budget": run["budget"], "proxy": row["proxy"], "d_model": row["d_model"],
                               "total_params": run["total_params"] or row["total_params"], "ppl": run["val_ppl"],
                               "label": f"{row['n_layer']}L d{row['d_model']} di{row['d_inner']}",
                               "archid": row["archid"], "run": run["run"]})
    return {"budgets": check.budgets, "points": points, "predictors": PREDICTORS}


@require_GET
def check_detail(request: HttpRequest, pk: int) -> HttpResponse:
    check = get_object_or_404(with_members(visible(ProxyCheck, request.user)), pk=pk)
    rows = services.model_rows(check)
    result = check.result or {}
    budgets = [{**b, "tokens_text": f"{b['tokens']:,}",
                "rows": [{"key": k, "label": label, **b["predictors"][k]} for k, label in PREDICTORS.items()]}
               for b in result.get("budgets", [])]
    agreement = result.get("agreement")
    if agreement:
        agreement = {**agreement, "from_text": f"{agreement['from_tokens']:,}", "to_text": f"{agreement['to_tokens']:,}"}
    progress = {s: 0 for s in ("queued", "running", "completed", "failed", "cancelled")}
    for row in rows:
        for run in row["runs"]:
            progress[run["status"]] += 1
    total = sum(progress.values())
    return render(request, "proxy_checks/detail.html", {
        "check": check, "rows": rows, "budgets": budgets, "agreement": agreement,
        "budget_labels": [f"{t:,}" for t in check.budgets], "settings_items": settings_items(check.config),
        "sentence": result.get("sentence", ""), "can_change": can_change(request.user, check),
        "progress": progress, "total": total,
        "percent": round(100 * (progress["completed"] + progress["failed"] + progress["cancelled"]) / max(total, 1)),
        "page_data": {"api": f"/api/v1/proxy-checks/{check.pk}/", "finished": check.is_finished,
                      "progress": progress, "chart": _chart(check, rows)},
    })


def _changeable(request: HttpRequest, pk: int) -> ProxyCheck:
    check = get_object_or_404(visible(ProxyCheck, request.user), pk=pk)
    if not can_change(request.user, check):
        raise PermissionDenied("only the owner or a team admin may change this check")
    return check


@require_POST
def check_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    check = _changeable(request, pk)
    try:
        services.do_cancel_proxy_check(check)
    except services.Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancelled: queued runs stop now, running ones at their next heartbeat.")
    return redirect("proxy-check", pk=pk)


@require_POST
def check_delete(request: HttpRequest, pk: int) -> HttpResponse:
    check = _changeable(request, pk)
    try:
        services.do_delete_proxy_check(check)
    except services.Conflict as exc:
        messages.error(request, str(exc))
        return redirect("proxy-check", pk=pk)
    messages.success(request, f"Deleted {check.name}; its runs and zoo models stay.")
    return redirect("proxy-checks")
