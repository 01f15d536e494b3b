"""python manage.py lts_train --arch JSON --data PATH_OR_NAME --tokenizer SPEC --max-steps N: train one model.

Through the same service as the API and a real worker on the "train" queue (or in this process with --local), with a
progress bar; the result lands in the zoo.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lts_web.fields import id_argument
from lts_web.models import Membership, Team
from lts_web.params import parse_int
from models_zoo import services
from models_zoo.models import Dataset, TrainingRun
from searches.core.arch import ConfigError
from searches.models import Candidate

_TOKENIZER_FILES = ("encoder.json", "vocab.bpe", "vocab.json", "merges.txt")


# What a local text file is called; a name with one of these suffixes is never tried as a Hugging Face dataset.
_TEXT_SUFFIXES = (".txt", ".text", ".md", ".raw", ".tokens", ".json", ".jsonl", ".csv")


def _looks_like_a_path(spec: str) -> bool:
    """A file or folder meant, not a hub dataset: ./x, ../x, /x, ~/x, or a name ending like a text file."""
    return spec.startswith((".", "/", "~")) or spec.lower().endswith(_TEXT_SUFFIXES)


def _errors(prefix: str, exc: ConfigError) -> CommandError:
    return CommandError(prefix + "\n" + "\n".join(f"  {k}: {v}" for k, v in exc.errors.items()))


def _line(run: TrainingRun | Any, width: int = 20) -> str:
    total = run.total_steps
    done = min(1.0, run.step / total) if total else 0.0
    parts = [f"step {run.step}" + (f"/{total}" if total else ""), f"[{'#' * int(width * done):<{width}}]"]
    if run.train_loss is not None:
        parts.append(f"loss {run.train_loss:.3f}")
    if run.val_loss is not None:
        parts.append(f"val {run.val_loss:.3f} (ppl {run.val_ppl:.1f})")
    if run.tokens_per_s:
        parts.append(f"{run.tokens_per_s:,.0f} tok/s")
    if run.eta_s is not None:
        parts.append(f"ETA {run.eta_s:.0f}s")
    return "  ".join(parts)


class Command(BaseCommand):
    help = ("Train an architecture on a text file, a folder, a registered dataset or a Hugging Face dataset, with a "
            "GPT-2 BPE from files or a byte-level BPE trained on the data; the model goes to the zoo. Runs on a "
            "worker of the 'train' queue (make run starts one), or here with --local.")

    def add_arguments(self, parser):
        parser.add_argument("--arch", help="architecture config: JSON text or a .json file")
        parser.add_argument("--candidate", type=id_argument, help="a search candidate's id instead of --arch")
        parser.add_argument("--data", help="a text file or folder (copied under LTS_DATA_ROOT unless already there), "
                                           "a registered dataset's name or dataset:ID, or a hub dataset (hub:NAME)")
        parser.add_argument("--tokenizer", default="bpe:4096", help="gpt2-files:DIR | bpe:VOCAB_SIZE | dir:DIR")
        parser.add_argument("--max-steps", type=int)
        parser.add_argument("--max-tokens", type=int)
        parser.add_argument("--max-minutes", type=float)
        parser.add_argument("--seq-len", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--grad-accum", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--config", help="more TrainConfig settings as JSON, e.g. '{\"eval_interval\": 100}'")
        parser.add_argument("--split", default="train", help="hub dataset split")
        parser.add_argument("--text-field", default="text", help="hub dataset text column")
        parser.add_argument("--hub-config", default="", help="hub dataset configuration name")
        parser.add_argument("--val-fraction", type=float, default=0.1)
        parser.add_argument("--user", default="demo", help="the submitting user (default demo)")
        parser.add_argument("--team", help="team name (default: the user's first team)")
        parser.add_argument("--name", default="")
        parser.add_argument("--local", action="store_true", help="train in this process instead of on a worker")
        parser.add_argument("--no-wait", action="store_true", help="submit and print the run id only")
        parser.add_argument("--follow", type=id_argument, metavar="RUN_ID", help="attach to an existing run")
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="give up following after this many s")

    @staticmethod
    def _config(opts: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        """--config (a JSON object) with the named options on top; min_lr a tenth of lr unless given."""
        config: dict[str, Any] = {}
        if opts["config"]:
            try:
                config = json.loads(opts["config"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--config is not JSON: {exc}") from None
            if not isinstance(config, dict):
                raise CommandError("--config must be a JSON object")
        for key in keys:
            if opts[key] is not None:
                config[key] = opts[key]
        if "lr" in config and "min_lr" not in config:
            config["min_lr"] = config["lr"] / 10
        return config

    def handle(self, *args, **opts):
        if opts["follow"]:
            run = TrainingRun.objects.filter(pk=opts["follow"]).first()
            if run is None:
                raise CommandError(f"no training run with id {opts['follow']}")
            return self._follow(run, opts["timeout"])
        user, team = self._user_team(opts)
        if not opts["data"]:
            raise CommandError("--data is required")
        architecture, candidate = self._architecture(opts)
        dataset = self._dataset(opts["data"], user, team, opts)
        tokenizer = self._tokenizer(opts["tokenizer"])
        config = self._config(opts, ("max_steps", "max_tokens", "max_minutes", "seq_len", "batch_size", "grad_accum",
                                     "lr"))
        try:
            run = services.do_start_training(owner=user, team=team, dataset=dataset, tokenizer=tokenizer,
                                              config=config, architecture=architecture, candidate=candidate,
                                              name=opts["name"], dispatch=not opts["local"])
        except ConfigError as exc:
            raise _errors("invalid training run:", exc) from None
        self.stdout.write(f"training run #{run.pk} '{run.name}' ({run.archid}) on {dataset.describe()} with {tokenizer}")
        if opts["local"]:
            return self._local(run)
        if opts["no_wait"]:
            return
        self._follow(run, opts["timeout"])

    # ---- inputs --------------------------------------------------------------------------------------------------

    def _user_team(self, opts) -> tuple[Any, Team]:
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}: pass --user NAME (make run creates 'demo')")
        memberships = Membership.objects.filter(user=user).select_related("team").order_by("team__name")
        if opts["team"]:
            membership = memberships.filter(team__name=opts["team"]).first()
            if membership is None:
                raise CommandError(f"{user.username} is not in a team {opts['team']!r}")
        else:
            membership = memberships.first()
            if membership is None:
                raise CommandError(f"{user.username} is in no team: add them to one in the admin")
        return user, membership.team

    def _architecture(self, opts) -> tuple[dict | None, Candidate | None]:
        if opts["candidate"] is not None:
            candidate = Candidate.objects.filter(pk=opts["candidate"]).first()
            if candidate is None:
                raise CommandError(f"no candidate with id {opts['candidate']}")
            return None, candidate
        if not opts["arch"]:
            raise CommandError("give --arch JSON (or a .json file) or --candidate ID")
        text = opts["arch"]
        if not text.lstrip().startswith("{") and Path(text).is_file():
            text = Path(text).read_text()
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--arch is not JSON: {exc}") from None

    def _unique_name(self, team: Team, base: str) -> str:
        name, n = base[:190], 2
        while Dataset.objects.filter(team=team, name=name).exists():
            name, n = f"{base[:190]} ({n})", n + 1
        return name

    def _dataset(self, spec: str, user, team: Team, opts) -> Dataset:
        """A registered dataset (by name or dataset:ID), a path (inside the data root: registered as a folder;
        outside: copied in as an upload, once), or a hub dataset."""
        if spec.startswith("dataset:"):
            pk = parse_int(spec[8:], 1)
            found = Dataset.objects.filter(team=team, pk=pk).first() if pk is not None else None
            if found is None:
                raise CommandError(f"no dataset {spec} in team {team.name}")
            return found
        found = Dataset.objects.filter(team=team, name=spec).first()
        if found is not None:
            return found
        common = dict(owner=user, team=team, validation_fraction=opts["val_fraction"])
        if spec.startswith("hub:"):
            return self._hub_dataset(spec[4:], common, team, opts, prefix=f"cannot use {spec!r} as training data:")
        root = Path(settings.LTS_DATA_ROOT).resolve()
        inside = root / spec if not os.path.isabs(spec) else Path(spec)
        local = Path(spec).expanduser()
        path = inside if inside.exists() else local if local.exists() else None
        if path is None:
            if _looks_like_a_path(spec):
                raise CommandError(f"cannot use {spec!r} as training data: no such file or folder (looked here, "
                                   f"in {Path.cwd()}, and under the data root, {root})")
            names = ", ".join(Dataset.objects.filter(team=team).order_by("name").values_list("name", flat=True)[:10])
            return self._hub_dataset(spec, common, team, opts, prefix=(
                f"cannot use {spec!r} as training data: it is no dataset of team {team.name} "
                f"({names or 'which has none'}), no file or folder here or under the data root, and as a "
                "Hugging Face dataset:"))
        try:
            resolved = path.resolve()
            if resolved.is_relative_to(root):
                relative = os.fspath(resolved.relative_to(root))
                found = Dataset.objects.filter(team=team, kind="folder", path=relative).first()
                return found or services.do_register_dataset(
                    **common, name=self._unique_name(team, relative), kind="folder", path=relative)
            tag = hashlib.sha1(os.fsencode(resolved)).hexdigest()[:8]
            name = f"{resolved.name} ({tag})"
            found = Dataset.objects.filter(team=team, kind="upload", name=name).first()
            if found is not None:
                return found
            self.stdout.write(f"copying {resolved} into the data root ({root}/uploads/)")
            return services.do_register_dataset(**common, name=name, kind="upload", copy_from=resolved)
        except ConfigError as exc:
            raise _errors(f"cannot use {spec!r} as training data:", exc) from None

    def _hub_dataset(self, hub: str, common: dict[str, Any], team: Team, opts, *, prefix: str) -> Dataset:
        found = Dataset.objects.filter(team=team, kind="hub", hub_name=hub, hub_split=opts["split"],
                                       hub_text_field=opts["text_field"], hub_config=opts["hub_config"]).first()
        try:
            return found or services.do_register_dataset(
                **common, name=self._unique_name(team, f"{hub}{'/' + opts['hub_config'] if opts['hub_config'] else ''}"),
                kind="hub", hub_name=hub, hub_split=opts["split"], hub_text_field=opts["text_field"],
                hub_config=opts["hub_config"])
        except ConfigError as exc:
            raise _errors(prefix, exc) from None

    def _tokenizer(self, spec: str) -> str:
        """A gpt2-files:/dir: folder outside the data root is copied in (the workers read only under it)."""
        kind, _, value = spec.partition(":")
        if kind not in ("gpt2-files", "dir") or not value:
            return spec
        root = Path(settings.LTS_DATA_ROOT).resolve()
        folder = Path(value).expanduser()
        if not folder.is_absolute() and (root / folder).exists():
            return spec
        folder = folder.resolve()
        if folder.is_relative_to(root):
            return f"{kind}:{folder.relative_to(root)}"
        if not folder.is_dir():
            raise CommandError(f"tokenizer folder {value} does not exist")
        files = [p for p in sorted(folder.iterdir()) if p.is_file() and (kind == "dir" or p.name in _TOKENIZER_FILES)]
        digest = hashlib.sha1()
        for f in files:
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        target = root / "tokenizers" / f"{kind}-{digest.hexdigest()[:12]}"
        if not target.is_dir():
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, tmp / f.name)
            os.replace(tmp, target)
            self.stdout.write(f"copied the tokenizer files of {folder} to {target}")
        return f"{kind}:{target.relative_to(root)}"

    # ---- running and following -----------------------------------------------------------------------------------

    def _show(self, line: str, state: dict) -> None:
        if line == state.get("last"):
            return
        tty = sys.stdout.isatty()
        now = time.monotonic()
        if not tty and now - state.get("at", 0.0) < 1.0 and not state.get("force"):
            return
        self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
        self.stdout.flush()
        state.update(last=line, at=now, force=False)

    def _local(self, run: TrainingRun) -> None:
        # --local makes this command the worker (a CLI entry point, not a service): it runs the task's body in-process.
        # tests/test_import_graph.py allows exactly this import of worker code outside workers/.
        from workers.training import execute_training

        state: dict = {}

        def echo(p) -> None:
            view = type("P", (), dict(step=p.step, total_steps=p.total_steps, train_loss=p.train_loss,
                                      val_loss=p.val_loss, val_ppl=p.val_perplexity, tokens_per_s=p.tokens_per_s,
                                      eta_s=p.eta_s))
            state["force"] = p.event != "train"
            self._show(_line(view), state)

        outcome = execute_training(run.pk, f"local:{os.getpid()}", echo=echo)
        if sys.stdout.isatty():
            self.stdout.write("")
        run.refresh_from_db()
        self._report(run, outcome)

    def _follow(self, run: TrainingRun, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        state: dict = {}
        while True:
            run.refresh_from_db()
            state["force"] = run.status in TrainingRun.FINISHED
            self._show(f"{run.status:<9} " + _line(run), state)
            if run.status in TrainingRun.FINISHED:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"still {run.status} after {timeout_s:.0f} s; follow it with --follow {run.pk}")
            time.sleep(0.5)
        if sys.stdout.isatty():
            self.stdout.write("")
        self._report(run, run.status)

    def _report(self, run: TrainingRun, outcome: str) -> None:
        if run.status != TrainingRun.Status.COMPLETED:
            raise CommandError(f"training run #{run.pk} {run.status} ({outcome}): {run.error or 'see the dashboard'}")
        model = getattr(run, "zoo_model", None)
        self.stdout.write(f"training run #{run.pk} completed: {run.step} steps, {run.tokens_seen:,} tokens, "
                          f"validation loss {run.val_loss:.4f}, perplexity {run.val_ppl:.2f}")
        if model is not None:
            self.stdout.write(f"zoo model #{model.pk} '{model.name}' ({model.archid}) in {model.folder}")
