"""Pages of the model zoo: models (list with the perplexity/latency chart, detail, download), training runs (list,
live detail, cancel, start), datasets (list, register). Another team's object is a 404 on every page, as in the API;
changes need its owner or a team admin (403)."""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lts_web.models import teams_of
from lts_web.params import query_ids
from lts_web.throttling import throttle_start_work
from models_zoo import services
from models_zoo.api import archive_response
from models_zoo.forms import DatasetForm, ImportForm, TrainForm
from models_zoo.models import Dataset, TrainingRun, ZooImport, ZooModel
from models_zoo.permissions import can_change, visible
from models_zoo.settings_text import settings_items
from searches.core.arch import ConfigError
from searches.core.pareto import MINIMIZE, pareto_front
from searches.models import Candidate, Device, Measurement
from searches.permissions import visible_searches

LIST_LIMIT = 500
IMPORTS_SHOWN = 10


# TrainConfig's settings that 0 turns off: no clipping, no interval evaluations or checkpoints (the final ones stay).
def _representative(rows: list[Measurement], own: str = "") -> dict[str, Measurement]:
    """One measurement per device for the table and the chart: of the model's own architecture (archid ``own``)
    when there is one, else of the architecture as searched; the prefill, batch-1 one at the longest sequence (the
    profiler's default settings), the newest on ties."""
    best: dict[str, Measurement] = {}
    for m in sorted(rows, key=lambda m: (m.archid != own, m.mode != "prefill", m.batch_size != 1, -m.seq_len, -m.pk)):
        best.setdefault(m.device.name, m)
    return best


def _zoo_rows(models: list[ZooModel]) -> tuple[list[dict[str, Any]], list[str]]:
    grouped = services.measurements_by_archid(a for m in models for a in m.archids)
    rows, devices = [], set()
    for model in models:
        per_device = _representative([m for a in model.archids for m in grouped.get(a, [])], model.archid)
        devices.update(per_device)
        rows.append({"model": model, "per_device": per_device})
    names = sorted(devices)
    for row in rows:
        row["cells"] = [row["per_device"].get(d) for d in names]
    return rows, names


def _of(model: ZooModel, m: Measurement) -> str:
    """Which architecture a figure is of: the model's own, or the one searched (another vocabulary)."""
    if m.archid == model.archid:
        return "this model's architecture"
    vocab = model.config.get("vocab_size")
    own = f", whose vocabulary is {vocab:,}" if vocab else ""
    return f"the architecture as searched, not this model's{own} (its own is measured when a device takes it)"


def _chart(rows: list[dict[str, Any]], devices: list[str]) -> dict[str, Any]:
    """Per device: every model with a validation perplexity and a measurement, and the trained frontier
    (non-dominated in perplexity and latency, resp. memory; both minimized)."""
    chart: dict[str, Any] = {}
    for device in devices:
        points = []
        for row in rows:
            model, m = row["model"], row["per_device"].get(device)
            if m is None or model.val_ppl is None:
                continue
            points.append({"id": model.pk, "name": model.name, "source": model.source, "ppl": model.val_ppl,
                           "latency_ms": m.latency_median_s * 1000 if m.latency_median_s is not None else None,
                           "memory_mb": m.peak_memory_mb, "proxy": model.non_embedding_params,
                           "of": _of(model, m)})
        fronts = {}
        for axis in ("latency_ms", "memory_mb"):
            trained = [p for p in points if p["source"] == ZooModel.Source.TRAINED and p[axis] is not None]
            order = pareto_front([[p[axis], p["ppl"]] for p in trained], [MINIMIZE, MINIMIZE]) if trained else []
            fronts[axis] = [trained[i]["id"] for i in order]
        chart[device] = {"points": points, "frontier": fronts}
    return chart


def _zoo_page(request: HttpRequest, form: ImportForm, status: int = 200) -> HttpResponse:
    models = list(visible(ZooModel, request.user).select_related("owner", "team").order_by("-created_at")[:LIST_LIMIT])
    rows, devices = _zoo_rows(models)
    # Hub imports under way, and the last ones that failed (with their reason): what the import form started.
    imports = list(visible(ZooImport, request.user).exclude(status=ZooImport.Status.COMPLETED)
                   .select_related("owner").order_by("-created_at")[:IMPORTS_SHOWN])
    return render(request, "models_zoo/zoo_list.html", {
        "rows": rows, "devices": devices, "chart": _chart(rows, devices), "import_form": form, "imports": imports,
        "importing": any(i.status in ZooImport.ACTIVE for i in imports),
        "as_searched": any(m is not None and m.archid != row["model"].archid for row in rows for m in row["cells"]),
    }, status=status)


@require_GET
def zoo_list(request: HttpRequest) -> HttpResponse:
    teams = list(teams_of(request.user))
    return _zoo_page(request, ImportForm(teams=teams, devices=Device.objects.all(),
                                         initial={"team": teams[0].pk if teams else None}))


@require_http_methods(["GET", "POST"])
@throttle_start_work
def zoo_import(request: HttpRequest) -> HttpResponse:
    """POST imports; a GET (a reload of the failed form's address, a bookmark) is the zoo page, where the form is."""
    if request.method == "GET":
        return redirect("zoo")
    teams = list(teams_of(request.user))
    form = ImportForm(request.POST, teams=teams, devices=Device.objects.all())
    if form.is_valid():
        data = form.cleaned_data
        device = Device.objects.filter(name=data["profile_device"]).first() if data["profile_device"] else None
        source = data["source"].strip()
        team = next(t for t in teams if t.pk == data["team"])
        try:
            if source.startswith("hub:"):
                services.do_request_import(owner=request.user, team=team, source=source, name=data["name"],
                                           profile_device=device)
                messages.success(request, f"Importing {source}: a worker downloads it, its progress shows below.")
                return redirect("zoo")
            model = services.do_import_model(owner=request.user, team=team, source=source, name=data["name"],
                                             profile_device=device)
        except ConfigError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Imported {model.name} ({model.archid}).")
            return redirect("zoo-model", pk=model.pk)
    return _zoo_page(request, form, status=400)


def _visible_model(request: HttpRequest, pk: int) -> ZooModel:
    return get_object_or_404(visible(ZooModel, request.user).select_related("owner", "team", "training_run"), pk=pk)


@require_GET
def zoo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    model = _visible_model(request, pk)
    grouped = services.measurements_by_archid(model.archids)
    measurements = [m for a in model.archids for m in grouped.get(a, [])]
    for m in measurements:
        m.of = _of(model, m)
    card = model.folder / "README.md"
    files = sorted((p.name, p.stat().st_size) for p in model.folder.iterdir() if p.is_file()) if model.folder.is_dir() else []
    return render(request, "models_zoo/zoo_detail.html", {
        "model": model, "measurements": measurements, "files": files, "can_change": can_change(request.user, model),
        "card": card.read_text(encoding="utf-8", errors="replace") if card.is_file() else "",
        "arch": model.config,
    })


@require_GET
def zoo_download(request: HttpRequest, pk: int) -> HttpResponse:
    return archive_response(_visible_model(request, pk))


@require_POST
def zoo_delete(request: HttpRequest, pk: int) -> HttpResponse:
    model = _visible_model(request, pk)
    if not can_change(request.user, model):
        raise PermissionDenied("only the owner or a team admin may delete this model")
    services.do_delete_model(model)
    messages.success(request, f"Deleted {model.name}.")
    return redirect("zoo")


@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    runs = (visible(TrainingRun, request.user).select_related("owner", "team", "dataset", "zoo_model")
            .defer("history", "architecture", "config").order_by("-created_at"))
    status = request.GET.get("status", "")
    if status in TrainingRun.Status.values:
        runs = runs.filter(status=status)
    return render(request, "models_zoo/run_list.html", {
        "runs": runs[:LIST_LIMIT], "statuses": TrainingRun.Status.choices, "selected": status})


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible(TrainingRun, request.user).select_related("owner", "team", "dataset", "zoo_model",
                                                                             "candidate"), pk=pk)
    return render(request, "models_zoo/run_detail.html", {
        "run": run, "can_change": can_change(request.user, run),
        "architecture_json": json.dumps(run.architecture), "settings_items": settings_items(run.config),
        "page_data": {"id": run.pk, "api": f"/api/v1/training-runs/{run.pk}/", "history": run.history,
                      "status": run.status, "finished": run.status in TrainingRun.FINISHED},
    })


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible(TrainingRun, request.user), pk=pk)
    if not can_change(request.user, run):
        raise PermissionDenied("only the owner or a team admin may cancel this run")
    try:
        services.do_cancel_training(run)
    except services.Conflict:
        messages.error(request, f"The run is already {run.status}.")
    else:
        messages.success(request, "Cancel requested: the run checkpoints and stops." if run.status == "running"
                         else "Cancelled.")
    return redirect("training-run", pk=pk)


def _candidate_ids(request: HttpRequest) -> list[int]:
    return query_ids(request.GET.getlist("candidate"), "candidate") + query_ids(request.GET.getlist("candidates"),
                                                                                "candidates")


@require_http_methods(["GET", "POST"])
@throttle_start_work
def train_new(request: HttpRequest) -> HttpResponse:
    """Start training: a pasted architecture, or the candidates of a search (?candidate=ID, repeated or
    ?candidates=1,2,3: one run each, as the search page's "train" action links)."""
    teams = list(teams_of(request.user))
    datasets = list(visible(Dataset, request.user).select_related("team").order_by("name"))
    if request.method == "POST":
        form = TrainForm(request.POST, teams=teams, datasets=datasets)
        ids = query_ids(request.POST.getlist("candidates"), "candidates")
    else:
        ids = _candidate_ids(request)
        form = TrainForm(teams=teams, datasets=datasets, initial={
            "team": teams[0].pk if teams else None, "candidates": ",".join(map(str, ids))})
    candidates = list(Candidate.objects.filter(pk__in=ids, job__in=visible_searches(request.user))
                      .select_related("job").order_by("pk"))
    missing = sorted(set(ids) - {c.pk for c in candidates})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = next(t for t in teams if t.pk == data["team"])
        dataset = next(d for d in datasets if d.pk == data["dataset"])
        if len(candidates) != len(data["candidates"]):
            form.add_error(None, "some candidates are not in your teams' searches")
        else:
            try:
                runs = [services.do_start_training(owner=request.user, team=team, dataset=dataset,
                                                   tokenizer=data["tokenizer"], config=form.train_config(),
                                                   candidate=c, name=data["name"] and f"{data['name']} {c.archid[:13]}")
                        for c in candidates] or [
                    services.do_start_training(owner=request.user, team=team, dataset=dataset,
                                               tokenizer=data["tokenizer"], config=form.train_config(),
                                               architecture=data["architecture"], name=data["name"])]
            except ConfigError as exc:
                form.add_service_errors(exc, {"architecture": "architecture", "config": "extra"})
            else:
                messages.success(request, f"Queued {len(runs)} training run{'s' if len(runs) > 1 else ''}.")
                return redirect("training-run", pk=runs[0].pk) if len(runs) == 1 else redirect("training-runs")
    # "Register a dataset first" comes back here with the same candidates
    back = request.get_full_path() if request.method == "GET" else (
        f"{reverse('training-new')}?candidates={','.join(map(str, ids))}" if ids else reverse("training-new"))
    return render(request, "models_zoo/train_new.html", {"form": form, "candidates": candidates,
                                                         "missing": missing, "has_datasets": bool(datasets),
                                                         "back": back},
                  status=400 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
@throttle_start_work
def dataset_list(request: HttpRequest) -> HttpResponse:
    teams = list(teams_of(request.user))
    if request.method == "POST":
        form = DatasetForm(request.POST, request.FILES, teams=teams)
        if form.is_valid():
            data = dict(form.cleaned_data)
            data["team"] = next(t for t in teams if t.pk == data["team"])
            upload = data.pop("file")
            try:
                if data["kind"] == Dataset.Kind.UPLOAD and upload is None:
                    raise ConfigError({"file": "choose a file to upload"})
                dataset = services.do_register_dataset(owner=request.user, upload=upload, **data)
            except ConfigError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Registered dataset {dataset.name}.")
                back = request.POST.get("next", "")
                if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                            require_https=request.is_secure()):
                    return redirect(back)
                return redirect("datasets")
    else:
        form = DatasetForm(teams=teams, initial={"team": teams[0].pk if teams else None})
    datasets = visible(Dataset, request.user).select_related("owner", "team").order_by("-created_at")
    back = request.POST.get("next") if request.method == "POST" else request.GET.get("next")
    if not (back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure())):
        back = ""
    return render(request, "models_zoo/datasets.html", {"datasets": datasets, "form": form, "next": back},
                  status=400 if request.method == "POST" else 200)


@require_POST
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(visible(Dataset, request.user), pk=pk)
    if not can_change(request.user, dataset):
        raise PermissionDenied("only the owner or a team admin may delete this dataset")
    try:
        services.do_delete_dataset(dataset)
    except services.Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted dataset {dataset.name}.")
    return redirect("datasets")


@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    """Up to three zoo models side by side: a prompt and sampling settings, text streamed from /api/v1/models/<id>/
    generate/stream, with time to first token, tokens per second and each model's proxy, perplexity and costs."""
    models = list(visible(ZooModel, request.user).select_related("team").order_by("-created_at")[:LIST_LIMIT])
    grouped = services.measurements_by_archid(a for m in models for a in m.archids)
    options = []
    for model in models:
        best = _representative([m for a in model.archids for m in grouped.get(a, [])], model.archid)
        options.append({
            "id": model.pk, "name": model.name, "team": model.team.name, "proxy": model.non_embedding_params,
            "total_params": model.total_params, "val_ppl": model.val_ppl,
            "context": model.config.get("max_sequence_length"),
            "costs": [{"device": name, "backend": m.backend, "seq_len": m.seq_len, "mode": m.mode,
                       "latency_s": m.latency_median_s, "memory_mb": m.peak_memory_mb} for name, m in best.items()],
        })
    chosen = query_ids(request.GET.getlist("models"), "models")[:3]
    # Nothing asked for: the best validation perplexity (the newest is often a throwaway proxy-check model)
    rated = sorted((o for o in options if o["val_ppl"] is not None), key=lambda o: o["val_ppl"])
    chosen = [pk for pk in chosen if any(o["id"] == pk for o in options)] or [o["id"] for o in (rated or options)[:1]]
    return render(request, "models_zoo/playground.html", {
        "options": options, "chosen": chosen, "max_new_tokens": settings.LTS_GENERATE_MAX_NEW_TOKENS,
        "max_prompt_chars": settings.LTS_GENERATE_MAX_PROMPT_CHARS,
    })
