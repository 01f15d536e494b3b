"""Every state change of a proxy check goes through a do_* function (STYLE.md); ``do_update_proxy_check`` derives
its status and result from its runs.

A check is K architectures drawn across the proxy range (models_zoo.proxy_checks.core.sampling), each trained through
models_zoo.services.do_start_training on the "train" queue like any run (so every model lands in the zoo), at one
budget or at N and 2N tokens. Nothing schedules the check itself: its status and statistics are a function of its
runs, recomputed when one of them finishes, fails or is cancelled (models_zoo.services sends the task
workers.proxy_checks.update_proxy_check once that commits; do_reap_proxy_checks catches a lost message). Reads only
read what is stored.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from models_zoo import services as zoo_services
from models_zoo.core import BUDGET_KEYS, MAX_TOKENS, TrainConfig
from models_zoo.models import Dataset, TrainingRun
from models_zoo.proxy_checks.core import MIN_MODELS, SampleError, analyze, interpret, pool_from_space, stratified_sample
from models_zoo.proxy_checks.models import ProxyCheck, ProxyCheckRun
from notifications.services import notify_proxy_check
from searches.core.arch import Architecture, ConfigError
from searches.core.space import PRESETS, SearchSpace
from searches.models import Candidate, SearchJob

__all__ = [
    "Conflict",
    "DEFAULT_CONFIG",
    "MAX_SAMPLE",
    "MIN_SAMPLE",
    "do_cancel_proxy_check",
    "do_create_proxy_check",
    "do_delete_proxy_check",
    "do_reap_proxy_checks",
    "do_update_proxy_check",
    "members",
    "model_rows",
    "space_key",
]

Conflict = zoo_services.Conflict
MIN_SAMPLE = MIN_MODELS
# 64 models at 2N tokens are 128 runs: past that a check is a training campaign, not a check.
MAX_SAMPLE = 64
# The seed column is an IntegerField.
MAX_SEED = 2**31 - 1
# The findings' setting (shared/notes/proxy-check-findings.md): context 128, batch 16; the rest is TrainConfig's.
DEFAULT_CONFIG: dict[str, Any] = {"seq_len": 128, "batch_size": 16}
# Part of every state key: bump it when the result or its wording changes, and stored results are recomputed.
RESULT_FORMAT = 2
R = TrainingRun.Status
S = ProxyCheck.Status


def space_key(space: Mapping[str, Any]) -> str:
    """sha1 of a canonical space document (SearchSpace.to_dict()): equal for a preset and a search of that preset."""
    return hashlib.sha1(json.dumps(space, sort_keys=True).encode()).hexdigest()


def _int(errors: dict[str, str], name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = f"must be an integer, got {value!r}"
    elif value < low or (high is not None and value > high):
        errors[name] = f"must be in [{low}, {high}], got {value}" if high is not None else f"must be at least {low}"


def _pool(errors: dict[str, str], preset: str | None, space: Mapping[str, Any] | None, search: SearchJob | None,
          seed: int) -> tuple[list[Architecture], list[Candidate | None], dict[str, Any] | None]:
    """(architectures, their candidates when drawn from a search, the canonical space) of the chosen source."""
    given = [name for name, value in (("preset", preset), ("space", space), ("search", search)) if value]
    if len(given) != 1:
        errors["preset" if not given else given[1]] = (
            f"choose one source: a preset ({', '.join(sorted(PRESETS))}), a space, or a finished search"
            if not given else f"give only one of {', '.join(given)}")
        return [], [], None
    if search is not None:
        if search.status not in SearchJob.FINISHED:
            errors["search"] = f"search #{search.pk} is {search.status}: a check draws from a finished search"
            return [], [], None
        candidates = list(search.candidates.only("pk", "archid", "config", "non_embedding_params").order_by("pk"))
        return [Architecture.from_dict(c.config) for c in candidates], list(candidates), search.spec["space"]
    if preset:
        if preset not in PRESETS:
            errors["preset"] = f"unknown preset {preset!r}; presets: {', '.join(sorted(PRESETS))}"
            return [], [], None
        parsed = PRESETS[preset]
    else:
        try:
            parsed = SearchSpace.from_dict(space)  # type: ignore[arg-type]  # the request's value: from_dict checks any
        except ConfigError as exc:
            errors.update({k if k == "space" else f"space.{k}": v for k, v in exc.errors.items()})
            return [], [], None
    pool = pool_from_space(parsed, seed=seed)
    return pool, [None] * len(pool), parsed.to_dict()


def do_create_proxy_check(*, owner, team, dataset: Dataset, tokenizer: str, max_tokens: int, sample_size: int = 12,
                          seed: int = 1, config: Mapping[str, Any] | None = None, preset: str | None = None,
                          space: Mapping[str, Any] | None = None, search: SearchJob | None = None,
                          compare_budget: bool = False, name: str = "", dispatch: bool = True) -> ProxyCheck:
    """Draw ``sample_size`` architectures across the proxy range of a preset, a space document or a finished
    search's candidates, and queue one training run per architecture and budget (``max_tokens``, and twice that
    with ``compare_budget``) on "train". Everything is checked before anything is created: ConfigError with field
    messages (preset, space.*, search, sample_size, max_tokens, seed, config.*, dataset, tokenizer). With
    dispatch=False the runs are only created (``lts_proxy_check --local`` trains them in-process)."""
    errors: dict[str, str] = {}
    _int(errors, "sample_size", sample_size, MIN_SAMPLE, MAX_SAMPLE)
    # compare_budget trains at twice max_tokens, which must stay within TrainConfig's MAX_TOKENS
    _int(errors, "max_tokens", max_tokens, 1, MAX_TOKENS // 2 if compare_budget else MAX_TOKENS)
    _int(errors, "seed", seed, 0, MAX_SEED)
    config = dict(DEFAULT_CONFIG, **(config or {})) if isinstance(config or {}, Mapping) else None
    if config is None:
        errors["config"] = "must be a JSON object of training settings"
        config = {}
    # A check's budget is tokens, the same for every model: steps would give wider models no more data, minutes would
    # give bigger models fewer tokens, and neither is "the ranking after N tokens".
    for key in BUDGET_KEYS:
        if key in config:
            errors[f"config.{key}"] = "a proxy check's budget is max_tokens, the same for every model"
    if "max_tokens" not in errors and not errors.keys() & {"config", *(f"config.{k}" for k in BUDGET_KEYS)}:
        try:  # every training setting now, with the others' messages (each run checks again, with its architecture)
            TrainConfig.from_dict({**config, "max_tokens": max_tokens * (2 if compare_budget else 1),
                                   "device": config.get("device") or "cpu"})
        except ConfigError as exc:
            errors.update({k if k == "max_tokens" else f"config.{k}": v for k, v in exc.errors.items()})
    pool, candidates, canonical = _pool(errors, preset, space, search, seed if isinstance(seed, int) else 0)
    picks: list[int] = []
    if canonical is not None and "sample_size" not in errors and "seed" not in errors:  # a pool, maybe empty
        try:
            picks = stratified_sample(pool, sample_size, seed=seed)
        except SampleError as exc:
            errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    assert canonical is not None
    budgets = [max_tokens, 2 * max_tokens] if compare_budget else [max_tokens]
    sample = []
    for i in picks:
        arch = pool[i]
        sample.append({"archid": arch.archid, "config": arch.to_dict(), "proxy": arch.non_embedding_params,
                       "total_params": arch.total_params, "n_layer": arch.n_layer, "d_model": arch.d_model,
                       "d_inner": arch.d_inner, "n_head": arch.n_head,
                       "candidate": candidates[i].pk if candidates[i] is not None else None})
    with transaction.atomic():
        check = ProxyCheck.objects.create(
            team=team, owner=owner, name=(name or f"proxy check on {dataset.name}")[:200], preset=preset or "",
            space=canonical, space_key=space_key(canonical), search=search, dataset=dataset,
            dataset_description=dataset.describe(), tokenizer=tokenizer.strip() if isinstance(tokenizer, str) else "",
            sample_size=sample_size, seed=seed, budgets=budgets, config=config, sample=sample)
        for tokens in budgets:
            for i, row in zip(picks, sample):
                try:
                    run = zoo_services.do_start_training(
                        owner=owner, team=team, dataset=dataset, tokenizer=tokenizer,
                        config={**config, "max_tokens": tokens}, architecture=row["config"],
                        candidate=candidates[i], name=f"{check.name} #{check.pk}: {row['archid'][:13]} @ {tokens:,} tokens",
                        dispatch=dispatch)
                except ConfigError as exc:  # the same for every run (settings, dataset, tokenizer): report it once
                    raise ConfigError({"space" if k.startswith("architecture") else
                                       "max_tokens" if k == "config.max_tokens" else k: v
                                       for k, v in exc.errors.items()}) from None
                ProxyCheckRun.objects.create(proxy_check=check, run=run, archid=row["archid"], budget=tokens)
    return _update(check)


def do_cancel_proxy_check(check: ProxyCheck) -> ProxyCheck:
    """Cancel every queued run and ask the running ones to stop; the check becomes cancelled when they have.
    Conflict when the check had already finished (or no longer exists)."""
    if not ProxyCheck.objects.filter(pk=check.pk, status=S.RUNNING).update(cancel_requested=True):
        status = ProxyCheck.objects.filter(pk=check.pk).values_list("status", flat=True).first()
        raise Conflict(f"cannot cancel a check that is {status}" if status is not None
                       else "cannot cancel: the check no longer exists")
    # Two statements for all of its runs, as do_cancel_training does for one (without its per-run check update: the
    # one below covers them): queued runs are cancelled now, running ones asked to stop at their next heartbeat.
    runs = TrainingRun.objects.filter(proxy_check_member__proxy_check=check)
    runs.filter(status=R.QUEUED).update(status=R.CANCELLED, cancel_requested=True, finished_at=timezone.now(),
                                        eta_s=None)
    runs.filter(status=R.RUNNING).update(cancel_requested=True)
    do_update_proxy_check(check.pk)  # queued runs are cancelled now: so may be the check
    check.refresh_from_db()
    return check


def do_delete_proxy_check(check: ProxyCheck) -> None:
    """Delete a finished check; its runs and zoo models stay (they are ordinary runs and models)."""
    if not ProxyCheck.objects.filter(pk=check.pk).exclude(status=S.RUNNING).delete()[0]:
        raise Conflict("cancel the check before deleting it: its runs are still training")


def members(check: ProxyCheck) -> list[ProxyCheckRun]:
    """The check's runs (prefetched by the list views, else one query), without their loss histories."""
    cached = getattr(check, "_prefetched_objects_cache", {}).get("members")
    if cached is not None:
        return list(cached)
    return list(check.members.select_related("run", "run__zoo_model").defer("run__history"))


def _state(check: ProxyCheck, members: Iterable[ProxyCheckRun]) -> str:
    state = [[m.run_id, m.run.status, m.run.val_ppl] for m in sorted(members, key=lambda m: m.run_id)]
    return hashlib.sha1(json.dumps([RESULT_FORMAT, check.cancel_requested, state]).encode()).hexdigest()


def _point(member: ProxyCheckRun) -> dict[str, Any]:
    """The predictors of a trained model: the proxy and d_model as drawn, total parameters as trained (the
    vocabulary is the tokenizer's, which changes the embedding)."""
    arch = Architecture.from_dict(member.run.architecture)
    model = getattr(member.run, "zoo_model", None)
    return {"archid": member.archid, "proxy": arch.non_embedding_params, "d_model": arch.d_model,
            "total_params": model.total_params if model is not None else arch.total_params,
            "val_ppl": member.run.val_ppl}


def do_update_proxy_check(check_id: int) -> ProxyCheck | None:
    """Bring the check's ``status`` and ``result`` in line with its runs (None when it no longer exists). Called on a
    worker when a run finished; idempotent. The check's row is locked while its runs are read, so two runs finishing
    together update it one after the other and the later one sees both."""
    with transaction.atomic():
        check = ProxyCheck.objects.select_for_update().filter(pk=check_id).first()
        return _update(check) if check is not None else None


def do_reap_proxy_checks() -> int:
    """Update the checks still running whose runs have all finished (the message of their last run was lost, or
    never sent: a broker that could not be reached). Returns how many changed."""
    stuck = (ProxyCheck.objects.filter(status=S.RUNNING)
             .exclude(members__run__status__in=TrainingRun.ACTIVE).values_list("pk", flat=True))
    updated = [do_update_proxy_check(check_id) for check_id in list(stuck)]
    return sum(1 for check in updated if check is not None and check.status != S.RUNNING)


def _update(check: ProxyCheck) -> ProxyCheck:
    """Bring ``status`` and ``result`` in line with the runs; a no-op (no query beyond the runs') when no run changed
    since the last update. The write is conditional on the state it replaced."""
    rows = members(check)
    state = _state(check, rows)
    if state == check.state_key:
        return check
    points: dict[int, list[dict[str, Any]]] = {tokens: [] for tokens in check.budgets}
    failed = {tokens: 0 for tokens in check.budgets}
    active = False
    for m in rows:
        if m.run.status == R.COMPLETED and m.run.val_ppl is not None:
            points[m.budget].append(_point(m))
        elif m.run.status in (R.FAILED, R.CANCELLED):
            failed[m.budget] += 1
        else:
            active = True
    result = analyze(points, failed=failed, seed=check.seed)
    result["sentence"] = interpret(result, planned=check.sample_size)
    if active:
        status = S.RUNNING
    elif check.cancel_requested:
        status = S.CANCELLED
    else:
        status = S.COMPLETED if len(points[max(check.budgets)]) >= MIN_MODELS else S.FAILED
    finished_at = check.finished_at or (timezone.now() if status != S.RUNNING else None)
    won = ProxyCheck.objects.filter(pk=check.pk, state_key=check.state_key).update(
        status=status, result=result, state_key=state, finished_at=finished_at, updated_at=timezone.now())
    if won and check.status == S.RUNNING and status != S.RUNNING:  # this refresh finished it: once per check
        notify_proxy_check(check.pk, status)
    check.status, check.result, check.state_key, check.finished_at = status, result, state, finished_at
    return check


def model_rows(check: ProxyCheck) -> list[dict[str, Any]]:
    """One row per drawn architecture, in proxy order, with its run at each budget (status, perplexity, progress,
    error, zoo model): what the page's table and the API's ``models`` show, failed runs included with their reason."""
    by_arch: dict[str, dict[int, ProxyCheckRun]] = {}
    for m in members(check):
        by_arch.setdefault(m.archid, {})[m.budget] = m
    rows = []
    for drawn in check.sample:
        runs = []
        for tokens in check.budgets:
            m = by_arch.get(drawn["archid"], {}).get(tokens)
            if m is None:
                continue
            run = m.run
            model = getattr(run, "zoo_model", None)
            runs.append({"budget": tokens, "run": run.pk, "status": run.status, "val_ppl": run.val_ppl,
                         "val_loss": run.val_loss, "step": run.step, "total_steps": run.total_steps,
                         "tokens_seen": run.tokens_seen, "error": run.error,
                         "zoo_model": model.pk if model is not None else None,
                         "total_params": model.total_params if model is not None else None})
        rows.append({**{k: drawn[k] for k in ("archid", "proxy", "n_layer", "d_model", "d_inner", "n_head",
                                              "candidate")},
                     "total_params": next((r["total_params"] for r in runs if r["total_params"]), None),
                     "runs": runs})
    return rows
