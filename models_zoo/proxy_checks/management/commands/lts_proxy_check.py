"""python manage.py lts_proxy_check --preset tiny --data input.txt --max-tokens 200000: how well the proxy ranks.

Through the same service as the API: K architectures drawn across the proxy range, trained by "train" workers (or
here, one after another, with --local), with a progress bar; prints the coefficients with their intervals, what they
mean, and one row per model.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lts_web.fields import id_argument
from models_zoo import services as zoo_services
from models_zoo.management.commands.lts_train import Command as TrainCommand
from models_zoo.management.commands.lts_train import _errors
from models_zoo.models import TrainingRun
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.core import PREDICTORS, format_interval
from models_zoo.proxy_checks.models import ProxyCheck
from searches.core.arch import Architecture, ConfigError
from searches.models import SearchJob


def _interval(c: dict[str, Any]) -> str:
    return format_interval(c, digits=3)


def progress_line(check: ProxyCheck, current: TrainingRun | None = None, width: int = 20) -> str:
    """"[#####     ] 5/12 models trained, 1 failed, run 7 step 40/98, rho -0.62 [-0.91, -0.05]"."""
    rows = services.members(check)
    done = sum(m.run.status in TrainingRun.FINISHED for m in rows)
    completed = sum(m.run.status == "completed" for m in rows)
    failed = sum(m.run.status in ("failed", "cancelled") for m in rows)
    total = len(rows) or 1
    parts = [f"[{'#' * int(width * done / total):<{width}}]", f"{completed}/{total} runs trained"]
    if failed:
        parts.append(f"{failed} failed")
    if current is not None and current.total_steps:
        parts.append(f"now {current.archid[:13]} step {current.step}/{current.total_steps}")
    budgets = [b for b in (check.result or {}).get("budgets", []) if b["predictors"]["proxy"]["spearman"]["estimate"]
               is not None]
    if budgets:
        parts.append(f"rho {_interval(budgets[-1]['predictors']['proxy']['spearman'])} (n={budgets[-1]['n']})")
    return "  ".join(parts)


class Command(BaseCommand):
    help = ("Check, on your data and budget, how well the training-free proxy (non-embedding parameters) ranks "
            "architectures by validation perplexity: trains K models drawn across the proxy range of a preset, a "
            "space or a finished search (through the 'train' workers, or here with --local) and reports Spearman's "
            "rho and Kendall's tau with 95% bootstrap intervals, beside total parameters and d_model.")

    def add_arguments(self, parser):
        parser.add_argument("--preset", help="a search-space preset (tiny, gpt2-lts)")
        parser.add_argument("--space", help="a search-space document: JSON text or a .json file")
        parser.add_argument("--search", type=id_argument, help="a finished search's id: draw from its candidates")
        parser.add_argument("--data", help="a text file or folder, a registered dataset's name or dataset:ID, or "
                                           "hub:NAME (as lts_train)")
        parser.add_argument("--tokenizer", default="bpe:4096", help="gpt2-files:DIR | bpe:VOCAB_SIZE | dir:DIR")
        parser.add_argument("-k", "--sample-size", type=int, default=12, help="models to train (default 12)")
        parser.add_argument("--max-tokens", type=int, help="training budget per model, in tokens")
        parser.add_argument("--compare-budget", action="store_true",
                            help="also train every model for twice the budget and report the agreement")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--seq-len", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--config", help="more TrainConfig settings as JSON")
        parser.add_argument("--val-fraction", type=float, default=0.1)
        parser.add_argument("--user", default="demo")
        parser.add_argument("--team")
        parser.add_argument("--name", default="")
        parser.add_argument("--local", action="store_true", help="train in this process instead of on workers")
        parser.add_argument("--no-wait", action="store_true", help="submit and print the check's id only")
        parser.add_argument("--follow", type=id_argument, metavar="CHECK_ID", help="attach to an existing check")
        parser.add_argument("--json", metavar="PATH", help="also write the check, its result and models as JSON")
        parser.add_argument("--timeout", type=float, default=7 * 24 * 3600, help="give up following after this many s")

    def handle(self, *args, **opts):
        if opts["follow"]:
            check = ProxyCheck.objects.filter(pk=opts["follow"]).first()
            if check is None:
                raise CommandError(f"no proxy check with id {opts['follow']}")
            return self._finish(self._follow(check, opts["timeout"]), opts)
        helper = TrainCommand(stdout=self.stdout, stderr=self.stderr)
        helper_opts = {"split": "train", "text_field": "text", "hub_config": "", **opts}
        user, team = helper._user_team(helper_opts)
        if not opts["data"]:
            raise CommandError("--data is required")
        if not opts["max_tokens"]:
            raise CommandError("--max-tokens is required: the training budget of every model, in tokens")
        dataset = helper._dataset(opts["data"], user, team, helper_opts)
        tokenizer = helper._tokenizer(opts["tokenizer"])
        config = helper._config(opts, ("seq_len", "batch_size", "lr"))
        space = None
        if opts["space"]:
            text = opts["space"]
            if not text.lstrip().startswith("{") and Path(text).is_file():
                text = Path(text).read_text()
            try:
                space = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--space is not JSON: {exc}") from None
        search = None
        if opts["search"] is not None:
            search = SearchJob.objects.filter(pk=opts["search"], team__memberships__user=user).first()
            if search is None:
                raise CommandError(f"no search #{opts['search']} in {user.username}'s teams")
        try:
            check = services.do_create_proxy_check(
                owner=user, team=team, dataset=dataset, tokenizer=tokenizer, max_tokens=opts["max_tokens"],
                sample_size=opts["sample_size"], seed=opts["seed"], config=config, preset=opts["preset"],
                space=space, search=search, compare_budget=opts["compare_budget"], name=opts["name"],
                dispatch=not opts["local"])
        except ConfigError as exc:
            raise _errors("invalid proxy check:", exc) from None
        budgets = " and ".join(f"{b:,}" for b in check.budgets)
        self.stdout.write(f"proxy check #{check.pk} '{check.name}': {check.sample_size} architectures, {budgets} "
                          f"tokens each, on {dataset.describe()} with {tokenizer}")
        if opts["no_wait"]:
            return
        check = self._local(check) if opts["local"] else self._follow(check, opts["timeout"])
        self._finish(check, opts)

    # ---- running and following -----------------------------------------------------------------------------------

    def _show(self, line: str, state: dict, force: bool = False) -> None:
        tty = sys.stdout.isatty()
        now = time.monotonic()
        if line == state.get("last") or (not tty and not force and now - state.get("at", 0.0) < 5.0):
            return
        self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
        self.stdout.flush()
        state.update(last=line, at=now)

    def _done(self, check: ProxyCheck, run: TrainingRun, state: dict) -> None:
        """One line per finished run, under the progress bar."""
        run.refresh_from_db()
        outcome = f"ppl {run.val_ppl:.2f}" if run.val_ppl is not None else f"{run.status}: {run.error[:120]}"
        if sys.stdout.isatty():
            self.stdout.write("")
        proxy = Architecture.from_dict(run.architecture).non_embedding_params
        self.stdout.write(f"  {run.archid[:13]}  proxy {proxy:>12,}  {run.config.get('max_tokens', 0):>10,} tokens  "
                          f"{outcome}")
        state["last"] = None

    def _local(self, check: ProxyCheck) -> ProxyCheck:
        from transformers.utils import logging as hf_logging

        # --local makes this command the training worker (a CLI entry point, not a service): it runs the task's body
        # in-process. tests/test_import_graph.py allows exactly this import of worker code outside workers/.
        from workers.training import execute_training

        hf_logging.disable_progress_bar()  # "Writing model shards" of every export would break the progress bar

        worker = f"local:{os.getpid()}"
        state: dict = {}
        queue = [m.run for m in services.members(check)]
        current: TrainingRun | None = None
        try:
            for run in queue:
                current = run

                def echo(p, run=run, check=check) -> None:
                    run.step, run.total_steps = p.step, p.total_steps
                    self._show(progress_line(check, run), state, force=p.event != "train")

                execute_training(run.pk, worker, echo=echo)
                check = services.do_update_proxy_check(check.pk)  # this process is the worker: no message waits
                self._done(check, run, state)
            current = None
        except KeyboardInterrupt:
            with contextlib.suppress(services.Conflict):  # its last run had finished it
                services.do_cancel_proxy_check(check)
            if current is not None:
                zoo_services.do_fail_training(current.pk, None, "interrupted: lts_proxy_check --local was stopped")
            raise CommandError(f"interrupted: proxy check #{check.pk} cancelled") from None
        check = services.do_update_proxy_check(check.pk)
        self._show(progress_line(check), state, force=True)
        if sys.stdout.isatty():
            self.stdout.write("")
        return check

    def _follow(self, check: ProxyCheck, timeout_s: float) -> ProxyCheck:
        deadline = time.monotonic() + timeout_s
        state: dict = {}
        reported: set[int] = set()
        while True:
            check = ProxyCheck.objects.get(pk=check.pk)  # updated by the workers as its runs finish
            rows = services.members(check)
            for m in rows:
                if m.run.status in TrainingRun.FINISHED and m.run_id not in reported:
                    reported.add(m.run_id)
                    self._done(check, m.run, state)
            running = next((m.run for m in rows if m.run.status == "running"), None)
            self._show(f"{check.status:<9} " + progress_line(check, running), state, force=check.is_finished)
            if check.is_finished:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"still {check.status} after {timeout_s:.0f} s; follow it with --follow {check.pk}")
            time.sleep(1.0)
        if sys.stdout.isatty():
            self.stdout.write("")
        return check

    # ---- the result ----------------------------------------------------------------------------------------------

    def _finish(self, check: ProxyCheck, opts) -> None:
        result = check.result or {}
        self.stdout.write(f"\nproxy check #{check.pk} {check.status}")
        for budget in result.get("budgets", []):
            self.stdout.write(f"\nafter {budget['tokens']:,} tokens per model: {budget['n']} models"
                              + (f" ({budget['failed']} failed or cancelled, excluded)" if budget.get("failed") else ""))
            self.stdout.write(f"  {'predictor':<42} {'Spearman rho [95% CI]':<26} {'Kendall tau [95% CI]':<26} "
                              "larger is better in")
            for name, label in PREDICTORS.items():
                p = budget["predictors"][name]
                share = f"{p['concordance']:.0%} of pairs" if p.get("concordance") is not None else "-"
                self.stdout.write(f"  {label:<42} {_interval(p['spearman']):<26} {_interval(p['kendall']):<26} {share}")
        agreement = result.get("agreement")
        if agreement:
            self.stdout.write(f"\nagreement of the rankings after {agreement['from_tokens']:,} and "
                              f"{agreement['to_tokens']:,} tokens ({agreement['n']} models): Spearman "
                              f"{_interval(agreement['spearman'])}, Kendall {_interval(agreement['kendall'])}")
        if result.get("sentence"):
            self.stdout.write("\n" + result["sentence"])
        models = services.model_rows(check)
        header = f"\n  {'archid':<15} {'layers':>6} {'d_model':>7} {'d_inner':>7} {'heads':>5} {'proxy':>12} {'total':>12}"
        self.stdout.write(header + "".join(f" {'ppl @ ' + format(b, ','):>18}" for b in check.budgets))
        for row in models:
            cells = {r["budget"]: r for r in row["runs"]}
            values = []
            for b in check.budgets:
                r = cells.get(b)
                values.append("-" if r is None else f"{r['val_ppl']:.2f}" if r["val_ppl"] is not None and
                              r["status"] == "completed" else r["status"])
            total = f"{row['total_params']:,}" if row["total_params"] else "-"
            self.stdout.write(f"  {row['archid'][:15]:<15} {row['n_layer']:>6} {row['d_model']:>7} {row['d_inner']:>7} "
                              f"{row['n_head']:>5} {row['proxy']:>12,} {total:>12}" + "".join(f" {v:>18}" for v in values))
        for row in models:
            for r in row["runs"]:
                if r["status"] in ("failed", "cancelled"):
                    self.stdout.write(f"  excluded: {row['archid'][:15]} @ {r['budget']:,} tokens {r['status']}: "
                                      f"{r['error'] or 'cancelled'}")
        if opts.get("json"):
            payload = {"id": check.pk, "name": check.name, "status": check.status, "budgets": check.budgets,
                       "sample_size": check.sample_size, "seed": check.seed, "space": check.space,
                       "dataset": check.dataset_description, "tokenizer": check.tokenizer, "config": check.config,
                       "result": result, "models": models}
            Path(opts["json"]).write_text(json.dumps(payload, indent=1))
        if check.status == ProxyCheck.Status.FAILED:
            raise CommandError(f"proxy check #{check.pk} failed: fewer than 3 models trained")

