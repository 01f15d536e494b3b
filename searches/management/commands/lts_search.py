"""python manage.py lts_search --preset tiny --generations 3 --device NAME: submit a search and watch it run."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lts_web.fields import id_argument
from lts_web.models import Team
from searches import services
from searches.models import Candidate, SearchJob
from searches.serializers import SearchCreateSerializer
from searches.specs import ALGORITHMS, MEASURE_POLICIES


class Command(BaseCommand):
    help = ("Submit a search job through the same path as the REST API (real workers, real queues), show a progress "
            "bar per generation and print the frontier when it is done. --follow JOB_ID attaches to a running one.")

    def add_arguments(self, parser):
        parser.add_argument("--preset", help="a preset space (gpt2-lts, tiny)")
        parser.add_argument("--space", help="path of a JSON search-space document")
        parser.add_argument("--spec", help="path of a JSON spec (the body of POST /api/v1/searches/); flags override")
        parser.add_argument("--generations", type=int)
        parser.add_argument("--device", help="device name (its profiling worker consumes profile.NAME)")
        parser.add_argument("--objectives", help="comma-separated: proxy,latency,memory")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--algorithm", choices=list(ALGORITHMS),
                            help="evolution (LTS), random (baseline) or scored (with --measure predicted: predict "
                                 "the whole space each round, measure what adds most hypervolume). Default: scored "
                                 "when measuring predicted on a space of at most 100,000 architectures, else evolution")
        parser.add_argument("--measure", choices=list(MEASURE_POLICIES),
                            help="predicted (default with a device): measure what the device's cost model cannot "
                                 "rule out, predict the rest; all: measure every candidate")
        parser.add_argument("--name", default="")
        parser.add_argument("--host-wait", type=float, metavar="SECONDS",
                            help="profiling.host_wait_s: how long a measurement may wait out slow phases of a shared "
                                 "host (default 20; 0: no check)")
        parser.add_argument("--user", default="demo", help="the submitting user (default demo)")
        parser.add_argument("--team", help="team name (default: the user's first team)")
        parser.add_argument("--follow", type=id_argument, metavar="JOB_ID", help="attach to an existing search")
        parser.add_argument("--no-wait", action="store_true", help="submit and print the job id only")
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="give up following after this many s")

    def handle(self, *args, **opts):
        if opts["follow"]:
            job = SearchJob.objects.filter(pk=opts["follow"]).first()
            if job is None:
                raise CommandError(f"no search with id {opts['follow']}")
        else:
            job = self._submit(opts)
            self.stdout.write(f"search #{job.pk} '{job.name}' submitted ({job.spec['device'] or 'no device'})")
            if opts["no_wait"]:
                return
        self._follow(job, opts["timeout"])

    def _submit(self, opts) -> SearchJob:
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}: pass --user NAME (make run creates 'demo')")
        body: dict = {}
        if opts["spec"]:
            try:
                body = json.loads(Path(opts["spec"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"cannot read the spec {opts['spec']}: {exc}") from None
        if opts["preset"]:
            body["preset"] = opts["preset"]
            body.pop("space", None)
        if opts["space"]:
            try:
                body["space"] = json.loads(Path(opts["space"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"cannot read the space {opts['space']}: {exc}") from None
            body.pop("preset", None)
        if opts["generations"] is not None:
            body["budget"] = {**body.get("budget", {}), "generations": opts["generations"]}
        for key in ("device", "seed", "algorithm", "measure"):
            if opts[key] is not None:
                body[key] = opts[key]
        if opts["host_wait"] is not None:
            body["profiling"] = {**body.get("profiling", {}), "host_wait_s": opts["host_wait"]}
        if opts["objectives"]:
            body["objectives"] = [o.strip() for o in opts["objectives"].split(",")]
        if opts["team"]:
            team = Team.objects.filter(name=opts["team"]).first()
            if team is None:
                raise CommandError(f"no team {opts['team']!r}")
            body["team"] = team.pk
        body["name"] = opts["name"] or body.get("name") or f"{body.get('preset') or 'custom'} search"
        serializer = SearchCreateSerializer(data=body, context={"request": SimpleNamespace(user=user)})
        if not serializer.is_valid():
            lines = [f"  {field}: {' '.join(map(str, msgs))}"
                     for field, msgs in serializer.errors.items()]
            raise CommandError("invalid search:\n" + "\n".join(lines))
        data = serializer.validated_data
        return services.do_create_search(owner=user, team=Team.objects.get(pk=data["team_id"]), name=data["name"],
                                         spec=data["spec"])

    def _follow(self, job: SearchJob, timeout_s: float) -> None:
        tty = sys.stdout.isatty()
        deadline = time.monotonic() + timeout_s
        last = None
        total = job.spec["budget"]["generations"]
        while True:
            job.refresh_from_db()
            rows = job.candidates.filter(generation=max(job.generation - 1, 0))
            done = rows.exclude(status=Candidate.Status.MEASURING).count()
            size = rows.count()
            predicted = rows.filter(status=Candidate.Status.PREDICTED).count()
            bar = "#" * int(20 * done / size) if size else ""
            line = (f"generation {max(job.generation, 1)}/{total} [{bar:<20}] {done - predicted}/{size} measured  "
                    + (f"{predicted} predicted  " if predicted else "") +
                    f"status {job.status}  frontier {job.candidates.filter(is_pareto=True).count()}")
            if line != last:
                self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
                self.stdout.flush()
                last = line
            if job.status in SearchJob.FINISHED:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"still {job.status} after {timeout_s:.0f} s; follow it with --follow {job.pk}")
            time.sleep(0.5)
        if tty:
            self.stdout.write("")
        if job.status != SearchJob.Status.COMPLETED:
            raise CommandError(f"search #{job.pk} {job.status}: {job.error or 'see the dashboard'}")
        self._print_frontier(job)

    def _print_frontier(self, job: SearchJob) -> None:
        rows = list(job.candidates.filter(is_pareto=True).select_related("measurement")
                    .order_by("-non_embedding_params"))
        hv = job.hypervolumes[-1]["hypervolume"] if job.hypervolumes else 0.0
        predicted = job.candidates.filter(status=Candidate.Status.PREDICTED).count()
        self.stdout.write(f"search #{job.pk} completed: {job.candidates.count()} candidates"
                          + (f" ({predicted} predicted, not measured)" if predicted else "")
                          + f", {len(rows)} on the frontier, hypervolume {hv:.6g}, {job.hardware_seconds:.1f} s of "
                          "device time")
        header = f"{'archid':<47} {'layers':>6} {'d_model':>7} {'d_inner':>7} {'heads':>5} {'proxy':>12} " \
                 f"{'latency ms':>10} {'memory MB':>9}"
        self.stdout.write(header)
        for c in rows:
            m = c.measurement
            latency = f"{m.latency_median_s * 1000:10.2f}" if m and m.latency_median_s is not None else f"{'-':>10}"
            memory = f"{m.peak_memory_mb:9.1f}" if m and m.peak_memory_mb is not None else f"{'-':>9}"
            self.stdout.write(f"{c.archid:<47} {c.n_layer:>6} {c.d_model:>7} {c.d_inner:>7} {c.n_head:>5} "
                              f"{c.non_embedding_params:>12,} {latency} {memory}")
