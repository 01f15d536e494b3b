"""A whole search end to end, `measure: all` against `measure: predicted`, on real workers and real profiling.

    .venv/bin/python bench/search_e2e.py --preset gpt2-lts --generations 10 --seed 1 --arms scored,all,predicted
                                                                    # the issue's run (~1 h 45 min)
    .venv/bin/python bench/search_e2e.py --preset tiny --generations 3 --seq-len 256      # a quick look (~2 min)

Each arm runs on a device of its own (`bench-all`, `bench-predicted`), so both start from a cold measurement cache and
the second cannot reuse the first's measurements; the arms run one after the other on this machine (SQLite and an
embedded Redis unless DATABASE_URL / REDIS_URL are set). Reported per arm: wall time, measurements, hardware seconds,
the hypervolume of each generation from measured candidates only against one reference point shared by both arms,
and the final frontier size; for the cost models, the held-out MAPE, Spearman and 90%-interval coverage of a model
fit on the first 25, 50 and 100 measurements of arm `all` (in the order they finished), tested on the rest; and the
peak resident memory of every process of the stack.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, setup_django, stop

# The arm's name: its spec's measure policy and algorithm.
ARMS = {"all": ("all", "evolution"), "predicted": ("predicted", "evolution"), "scored": ("predicted", "scored")}



class _PeakMemory:
    """The peak resident memory of each process of the stack, sampled every 0.5 s and grouped by role (this process;
    each worker's main process; its pool and profiling children): a process's own high-water mark (VmHWM)."""

    def __init__(self, roots: dict[str, subprocess.Popen]):
        self.roots, self.peaks, self.errors, self._stop = roots, {}, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @staticmethod
    def _hwm(proc) -> int:
        try:
            line = next(x for x in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
            return int(line.split()[1]) * 1024
        except (OSError, StopIteration):
            return proc.memory_info().rss

    def _sample(self) -> None:
        import psutil

        procs = [("benchmark process (orchestration reads)", psutil.Process())]
        for label, root in self.roots.items():
            try:
                parent = psutil.Process(root.pid)
                procs += [(f"{label}: main", parent)]
                procs += [(f"{label}: children (pool, profiling)", c) for c in parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        for role, proc in procs:
            try:
                peak = self._hwm(proc)
            except (psutil.Error, OSError):  # a profiling child that ended meanwhile
                continue
            self.peaks[role] = max(self.peaks.get(role, 0), peak)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001  (a sampler that dies silently reports only what it saw first)
                self.errors.append(repr(exc))


def _start_workers(device: str) -> dict[str, subprocess.Popen]:
    celery = [sys.executable, "-m", "celery", "-A", "lts_web", "worker", "-l", "WARNING", "--without-gossip",
              "--without-mingle"]
    env = {**os.environ, "LTS_DEVICE": device}
    return {"control worker": subprocess.Popen([*celery, "-Q", "control", "-n", f"control-{device}@%h"], cwd=ROOT,
                                               env=env, start_new_session=True),
            "profiling worker": subprocess.Popen([*celery, "-Q", f"profile.{device}", "-n", f"profile-{device}@%h",
                                                  "--concurrency", "1"], cwd=ROOT, env=env, start_new_session=True)}


def _run_arm(arm: str, args, user, team) -> dict:
    from searches import services
    from searches.models import Device, Measurement, SearchJob
    from searches.specs import normalize_spec
    from workers.tasks import ping

    device = f"bench-{arm}"
    procs = _start_workers(device)
    try:
        with _PeakMemory(procs) as memory:
            while not Device.objects.filter(name=device).exists():
                time.sleep(0.2)
            ping.delay().get(timeout=300)  # the control worker is up: its start-up is not the search's
            spec = normalize_spec({
                "preset": args.preset, "device": device, "measure": ARMS[arm][0], "algorithm": ARMS[arm][1],
                "seed": args.seed,
                "budget": {"generations": args.generations},
                "profiling": {"batch_size": args.batch_size, "seq_len": args.seq_len, "threads": args.threads,
                              "host_wait_s": args.host_wait},
            })
            job = services.do_create_search(owner=user, team=team, name=f"e2e {arm}", spec=spec)
            started = time.monotonic()
            shown = None
            while job.status not in SearchJob.FINISHED:
                time.sleep(1.0)
                job.refresh_from_db()
                if job.generation != shown:  # a line a generation (a log file, not a terminal)
                    shown = job.generation
                    print(f"{time.monotonic() - started:7.0f} s {arm}: generation {job.generation}/{args.generations} "
                          f"{job.counts}", flush=True)
            wall = time.monotonic() - started
            print(f"\n{arm}: {job.status} in {wall:.0f} s, {job.counts}", flush=True)
    finally:
        for p in procs.values():
            stop(p)
    measured = list(Measurement.objects.filter(device__name=device, status="done").order_by("finished_at", "id"))
    return {"arm": arm, "job": job, "wall_s": wall, "measurements": measured,
            "hardware_s": sum(m.wall_s or 0.0 for m in measured), "peaks": memory.peaks,
            "sampler_errors": memory.errors}


def _earlier_arm(arm: str, job) -> dict:
    """An arm a run before this one completed in the same database (--var), as _run_arm returns it."""
    from searches.models import Measurement

    measured = list(Measurement.objects.filter(device__name=f"bench-{arm}", status="done").order_by("finished_at", "id"))
    print(f"{arm}: completed in an earlier run ({job.created_at:%Y-%m-%d %H:%M} UTC), reported from the database",
          flush=True)
    return {"arm": arm, "job": job, "wall_s": (job.finished_at - job.created_at).total_seconds(),
            "measurements": measured, "hardware_s": sum(m.wall_s or 0.0 for m in measured), "peaks": {},
            "sampler_errors": []}


def _hypervolumes(result: dict, ref: list[float]) -> list[float]:
    """Hypervolume after each generation, from the candidates measured by then (measured only), against ``ref``."""
    from searches.core.pareto import OBJECTIVES, hypervolume

    job = result["job"]
    names = job.objectives
    rows = [c for c in job.candidates.select_related("measurement") if c.status == "measured" and c.feasible]
    out = []
    for generation in range(job.generation):
        points = [[_value(c, n) for n in names] for c in rows if c.generation <= generation]
        out.append(hypervolume(points, ref, [OBJECTIVES[n] for n in names]) if points else 0.0)
    return out


def _value(candidate, name: str) -> float:
    m = candidate.measurement
    return {"proxy": float(candidate.non_embedding_params), "latency": m.latency_median_s,
            "memory": m.peak_memory_mb}[name]


def _cost_model_rows(measurements, settings) -> list[str]:
    from searches.core.arch import Architecture
    from searches.core.cost_model import MIN_OBSERVATIONS, NotEnoughData, Observation, fit_cost_model, heldout_report

    observations = [Observation(Architecture.from_dict(m.config), m.latency_median_s, m.peak_memory_mb,
                                m.finished_at.timestamp()) for m in measurements]
    lines = []
    for n in (25, 50, 100):
        if len(observations) < n + 10:
            lines.append(f"| {n} | too few measurements in arm all ({len(observations)}) | | | | | |")
            continue
        try:
            model = fit_cost_model(settings, observations[:n])
        except NotEnoughData as exc:
            lines.append(f"| {n} | {exc} | | | | | |")
            continue
        for label, test in (("the rest", observations[n:]), ("the next 50", observations[n:n + 50])):
            report = heldout_report(model, test)
            lat, mem = report["latency"], report["memory"]
            lines.append(f"| {n} | {label}: {lat['n']} | {lat['mape']:.1%} | {lat['spearman']:.3f} | "
                         f"{lat['coverage']:.0%} | {mem['mape']:.2%} | {mem['spearman']:.3f} | {mem['coverage']:.0%} |")
    if len(observations) > MIN_OBSERVATIONS:
        model = fit_cost_model(settings, observations)
        lat, mem = model.latency, model.memory
        lines.append(f"| every 10 (the product's later check, CostModel.later_*) | {lat.later_n} | "
                     f"{lat.later_mape:.1%} | | {lat.later_coverage:.0%} | {mem.later_mape:.2%} | | "
                     f"{mem.later_coverage:.0%} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2-lts", choices=("gpt2-lts", "tiny"))
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--host-wait", type=float, default=20.0, help="profiling.host_wait_s (0: no host check)")
    parser.add_argument("--dump", type=Path, help="write each arm's measurements (in the order they finished: config, "
                        "latency s, peak memory MB, finished at, the profiler's host probe) to this JSON file")
    parser.add_argument("--var", type=Path, help="the folder (database) of an earlier run to add arms to: an arm that "
                        "completed there is reported from the database, not run again (its wall time from the job's "
                        "timestamps; its peak memory was printed by the run that measured it)")
    parser.add_argument("--arms", default="all,predicted",
                        help=f"which arms, in order, of {', '.join(ARMS)} (all,predicted by default)")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    if not set(arms) <= set(ARMS):
        parser.error(f"--arms takes {', '.join(ARMS)}")

    if args.var and not (args.var / "db.sqlite3").is_file():
        parser.error(f"--var {args.var}: no db.sqlite3 there (the folder a run of this script printed)")
    var = str(args.var) if args.var else tempfile.mkdtemp(prefix="lts-bench-e2e-")
    print(f"database and files in {var} (bench/cost_model_coverage.py --var {var} --device bench-all reads it)",
          flush=True)
    from workers.embedded_redis import EmbeddedRedis

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
    setup_django({"DEBUG": "1", "LTS_VAR_DIR": var, "LOG_LEVEL": "WARNING"})
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from lts_web.services import do_create_team

    call_command("migrate", verbosity=0)
    from searches.models import SearchJob

    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user("bench")
        team = do_create_team("bench", user)
    else:
        team = user.teams.get(name="bench")
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    try:
        for arm in arms:
            earlier = SearchJob.objects.filter(name=f"e2e {arm}", status=SearchJob.Status.COMPLETED).first()
            results.append(_earlier_arm(arm, earlier) if earlier else _run_arm(arm, args, user, team))
            if args.dump:
                _dump(results, args)
            if len(results) < len(arms):  # a long run stopped in a later arm still leaves the report of these
                print(f"\n==== report after {len(results)} of {len(arms)} arms ====")
                _report(results, args, started_at)
    finally:
        if redis:
            redis.stop()
    print("\n==== report ====")
    _report(results, args, started_at)


def _dump(results: list[dict], args) -> None:
    from searches.specs import profile_settings

    data = {"preset": args.preset, "generations": args.generations, "seed": args.seed, "machine": machine(),
            "arms": {r["arm"]: {"settings": profile_settings(r["job"].spec).to_dict(),
                                "measurements": [[m.config, m.latency_median_s, m.peak_memory_mb,
                                                  m.finished_at.isoformat(), (m.details or {}).get("host")]
                                                 for m in r["measurements"]]} for r in results}}
    args.dump.write_text(json.dumps(data))
    print(f"measurements written to {args.dump}", flush=True)


def _report(results: list[dict], args, started_at: str) -> None:
    from searches.core.pareto import OBJECTIVES
    from searches.specs import profile_settings

    names = results[0]["job"].objectives
    # One reference point for both arms: 0 parameters, 1.1x the worst latency and memory any arm measured.
    ref = []
    for n in names:
        values = [_value(c, n) for r in results for c in r["job"].candidates.select_related("measurement")
                  if c.status == "measured"]
        ref.append(0.0 if OBJECTIVES[n] == "maximize" else max(values) * 1.1)
    print(f"\n{args.preset}, {args.generations} generations, seed {args.seed}, batch {args.batch_size}, sequence "
          f"{args.seq_len}, {args.threads} thread(s), host wait {args.host_wait} s; started {started_at}; "
          f"machine: {machine()}")
    print(f"reference point: {dict(zip(names, ref))}\n")
    print("| arm | wall s | proposed | measured | hardware s | final hypervolume | frontier |")
    print("|---|---|---|---|---|---|---|")
    hvs = {}
    for r in results:
        job = r["job"]
        hvs[r["arm"]] = _hypervolumes(r, ref)
        frontier = job.candidates.filter(is_pareto=True).count()
        print(f"| {r['arm']} | {r['wall_s']:.0f} | {job.candidates.count()} | {len(r['measurements'])} | "
              f"{r['hardware_s']:.0f} | {hvs[r['arm']][-1]:.6g} | {frontier} |")
    base = next((r for r in results if r["arm"] == "all"), None)
    for b in results:
        if base is None or b is base:
            continue
        print(f"\n{b['arm']} / all: hypervolume {hvs[b['arm']][-1] / hvs['all'][-1]:.4f}, measurements "
              f"{len(b['measurements']) / len(base['measurements']):.1%}, wall {b['wall_s'] / base['wall_s']:.1%}, "
              f"hardware {b['hardware_s'] / max(base['hardware_s'], 1e-9):.1%}")
    print("\nPredictions a search acted on, then measured: inside their 90% interval (job.counts)")
    print("| arm | predicted, then measured | latency inside | memory inside |\n|---|---|---|---|")
    for r in results:
        c = r["job"].counts
        checked = c.get("predictions_checked", 0)
        if checked:
            print(f"| {r['arm']} | {checked} | {c['latency_inside'] / checked:.0%} | {c['memory_inside'] / checked:.0%} |")
        else:
            print(f"| {r['arm']} | 0 | | |")
    print("\nHypervolume per generation (measured candidates only):")
    print("| generation | " + " | ".join(hvs) + " |\n|---|" + "---|" * len(hvs))
    for g in range(max(len(v) for v in hvs.values())):
        print(f"| {g + 1} | " + " | ".join(f"{v[g]:.6g}" if g < len(v) else "" for v in hvs.values()) + " |")
    if base is not None:
        settings = profile_settings(base["job"].spec)
        print("\nCost models fit on the first n measurements of arm all, tested on what was measured later (held out), "
              "and the product's own check (each block of 10 predicted by the model fit before it):")
        print("| n | held out | latency MAPE | latency Spearman | latency 90% coverage | memory MAPE | "
              "memory Spearman | memory 90% coverage |\n|---|---|---|---|---|---|---|---|")
        print("\n".join(_cost_model_rows(base["measurements"], settings)))
    print("\nPeak resident memory of each process (MB; children: the largest of them):")
    print("| arm | process | peak MB |\n|---|---|---|")
    for r in results:
        for role, peak in sorted(r["peaks"].items(), key=lambda kv: -kv[1]):
            print(f"| {r['arm']} | {role} | {peak / 2**20:.0f} |")
        if r["sampler_errors"]:
            print(f"({r['arm']}: {len(r['sampler_errors'])} failed samples, first: {r['sampler_errors'][0]})")


if __name__ == "__main__":
    main()
