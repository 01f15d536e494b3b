"""API latency with 100,000 candidates in PostgreSQL under 20 concurrent clients, and orchestration overhead.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api.py http
    .venv/bin/python bench/api.py orchestration          # real workers, real profiling, tiny preset

`http` seeds its own database (lts_bench_api, dropped and re-created), starts gunicorn on a free port and measures
p50/p95/p99 of the candidates list, the `after` poll and the frontier endpoint (`--endpoints search`), or of every read
endpoint of the API in turn (`--endpoints read`: searches, a search, its candidates and frontier, measurements, devices,
zoo models, datasets, training runs, proxy checks, presets, me, teams), with the requests per second, the errors, and
where the machine's CPU time went meanwhile (gunicorn, PostgreSQL, Redis, this load generator):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/api.py http --endpoints read \
        --clients 50 --seconds 60 --think 0 `orchestration` runs a tiny search
through a real control worker and profiling worker and reports job wall time minus time spent measuring.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, fresh_postgres, machine, setup_django, start_gunicorn, stop

# ---- http -----------------------------------------------------------------------------------------------------------



def _seed(n: int, seed: int = 0) -> tuple[int, str, int]:
    """A finished job with n candidates, each with a done measurement; returns (job id, token, last revision)."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    from lts_web.services import do_create_team
    from searches.core.arch import Architecture
    from searches.core.pareto import pareto_mask
    from searches.models import Candidate, Device, Measurement, SearchJob
    from searches.specs import normalize_spec

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    team = do_create_team("bench", user)
    token = AuthToken.objects.create(user=user)[1]
    device = Device.objects.create(name="bench")
    spec = normalize_spec({"preset": "gpt2-lts", "device": "bench", "budget": {"generations": 1000}})
    rng = random.Random(seed)
    combos = list(itertools.product(range(1, 25), range(64, 4096, 64), range(64, 4096, 64), (1, 2, 4)))
    rng.shuffle(combos)
    archs = [Architecture(n_layer=n_layer, d_model=d, d_inner=i, n_head=h) for n_layer, d, i, h in combos[:n]]
    per_gen = 100
    revisions = n // per_gen
    job = SearchJob.objects.create(owner=user, team=team, name="100k", spec=spec, device=device, status="completed",
                                   generation=revisions, revision=revisions + 1)
    noise = np.random.default_rng(seed)
    proxies = np.array([a.non_embedding_params for a in archs], dtype=float)
    latency = proxies * 4e-8 * noise.lognormal(0, 0.3, n) + 0.01
    memory = proxies * 4 / 2**20 * noise.lognormal(0, 0.2, n) + 30
    pareto = pareto_mask(np.column_stack([proxies, latency, memory]), ["maximize", "minimize", "minimize"])
    batch = 5000
    for start in range(0, n, batch):
        chunk = range(start, min(n, start + batch))
        ms = Measurement.objects.bulk_create([
            Measurement(archid=archs[i].archid, config=archs[i].to_dict(), device=device, backend="torch",
                        batch_size=1, seq_len=1024, threads=1, mode="prefill", dtype="float32", status="done",
                        latency_median_s=latency[i], peak_memory_mb=memory[i], wall_s=1.0) for i in chunk])
        Candidate.objects.bulk_create([
            Candidate(job=job, archid=a.archid, config=a.to_dict(), generation=i // per_gen, position=i % per_gen,
                      origin="random", n_layer=a.n_layer, d_model=a.d_model, d_inner=a.d_inner, n_head=a.n_head,
                      non_embedding_params=a.non_embedding_params, total_params=a.total_params, measurement=m,
                      status="measured", feasible=True, is_pareto=bool(pareto[i]), revision=i // per_gen + 1)
            for i, a, m in zip(chunk, (archs[i] for i in chunk), ms)])
    SearchJob.objects.filter(pk=job.pk).update(counts={"candidates": n, "measured": n, "measuring": 0, "failed": 0,
                                                       "pareto": int(pareto.sum())})
    from django.db import connection

    with connection.cursor() as cursor:
        # As autovacuum leaves a table some time after bulk inserts: statistics and the visibility map (index-only
        # scans of candidate_job_order need it).
        cursor.execute("VACUUM ANALYZE")
    return job.pk, token, job.revision


def _client(port: int, token: str, paths: list[tuple[str, str]], until: float, out: dict[str, list[float]],
            errors: list[str], think_s: float = 0.0) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Host": "127.0.0.1"}
    i = random.randrange(len(paths))
    while time.monotonic() < until:
        name, path = paths[i % len(paths)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("GET", path() if callable(path) else path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{name}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        elapsed = time.perf_counter() - started
        if response.status != 200:
            errors.append(f"{name}: HTTP {response.status} {body[:200]!r}")
        out.setdefault(name, []).append(elapsed)
        out.setdefault(name + ":bytes", []).append(len(body))
        if think_s:  # a dashboard polls about once a second; 0 = a closed loop that saturates the server
            time.sleep(random.uniform(0.5, 1.5) * think_s)
    conn.close()


def bench_http(args) -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("bench/api.py http measures PostgreSQL: set DATABASE_URL=postgres://...")
    db_url = fresh_postgres(url, "lts_bench_api")
    var = tempfile.mkdtemp(prefix="lts-bench-")
    from workers.embedded_redis import EmbeddedRedis

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
    env = {"DATABASE_URL": db_url, "DEBUG": "0", "SECRET_KEY": "bench-" + "k7x" * 20, "SECURE_SSL_REDIRECT": "0",
           "ALLOWED_HOSTS": "127.0.0.1", "LTS_VAR_DIR": var, "LOG_LEVEL": "WARNING"}
    setup_django(env)
    t0 = time.monotonic()
    job_id, token, revision = _seed(args.candidates)
    print(f"seeded {args.candidates:,} candidates in {time.monotonic() - t0:.1f} s", flush=True)
    port = free_port()
    server = start_gunicorn(port, {**os.environ, **env}, workers=args.workers, threads=args.threads)
    try:
        paths = _paths(args.endpoints, job_id, args.candidates, revision)
        # Warm-up with every client: each gunicorn thread opens its database connection on its first request.
        warm_until = time.monotonic() + 5
        warmers = [threading.Thread(target=_client, args=(port, token, paths, warm_until, {}, [], args.think))
                   for _ in range(args.clients)]
        for t in warmers:
            t.start()
        for t in warmers:
            t.join()
        results: dict[str, list[float]] = {}
        errors: list[str] = []
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=_client, args=(port, token, paths, until, results, errors, args.think))
                   for _ in range(args.clients)]
        cpu_before = _cpu_by_process(server)
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu_by_process(server).items()}
    finally:
        stop(server)
        if redis:
            redis.stop()
    total = sum(len(results.get(name, [])) for name, _ in paths)
    print(f"\n{args.clients} concurrent clients, think time {args.think} s (uniform 0.5-1.5x), for {args.seconds} s: "
          f"{total / args.seconds:.1f} requests/s; {args.candidates:,} candidates; gunicorn {args.workers} workers x "
          f"{args.threads} threads; machine: {machine()}")
    print("| endpoint | requests | p50 ms | p95 ms | p99 ms | bytes per response |\n|---|---|---|---|---|---|")
    for name, _ in paths:
        samples = sorted(results.get(name, []))
        if not samples:
            continue
        q = statistics.quantiles(samples, n=100)
        size = statistics.median(results[name + ":bytes"])
        print(f"| {name} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | {q[94] * 1000:.1f} | "
              f"{q[98] * 1000:.1f} | {size:,.0f} |")
    every = sorted(x for name, _ in paths for x in results.get(name, []))
    if every:
        q = statistics.quantiles(every, n=100)
        print(f"| all | {len(every)} | {statistics.median(every) * 1000:.1f} | {q[94] * 1000:.1f} | {q[98] * 1000:.1f} |"
              f" |")
    print(f"errors: {len(errors)}" + (f", first: {errors[:3]}" if errors else ""))
    # Where the time goes: CPU seconds of each kind of process over the measured window, against the machine's
    # (cores x seconds). A closed loop saturates the cores; every request then waits its turn in the queue, so
    # latency ~ clients / throughput (Little's law), and throughput ~ cores / CPU per request.
    capacity = (os.cpu_count() or 1) * elapsed
    print(f"\nCPU over the {elapsed:.1f} s window ({os.cpu_count()} cores = {capacity:.0f} core-seconds); "
          f"per request: CPU seconds / {total} requests")
    print("| process | CPU s | share of the cores | ms per request |\n|---|---|---|---|")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds:.1f} | {seconds / capacity:.0%} | {seconds / max(total, 1) * 1000:.1f} |")
    busy = sum(cpu.values())
    print(f"| all of these | {busy:.1f} | {busy / capacity:.0%} | {busy / max(total, 1) * 1000:.1f} |")
    if every:
        print(f"Little's law: {args.clients} clients / {total / args.seconds:.1f} requests/s = "
              f"{args.clients / (total / args.seconds) * 1000:.0f} ms per request in the system (measured mean "
              f"{statistics.fmean(every) * 1000:.0f} ms)")


def _paths(kind: str, job_id: int, n: int, revision: int) -> list[tuple[str, Any]]:
    search = [
        ("candidates list (page of 100)", lambda: f"/api/v1/candidates/?job={job_id}&limit=100"
                                                  f"&offset={random.randrange(0, n - 100)}"),
        ("after poll (last generation)", f"/api/v1/candidates/?job={job_id}&after={revision - 2}"),
        ("frontier (job objectives)", f"/api/v1/searches/{job_id}/frontier/"),
        ("frontier (proxy vs latency)", f"/api/v1/searches/{job_id}/frontier/?objectives=proxy,latency"),
    ]
    if kind == "search":
        return search
    return search + [
        ("searches list", "/api/v1/searches/"),
        ("search detail", f"/api/v1/searches/{job_id}/"),
        ("measurements list (page of 100)", "/api/v1/measurements/?limit=100"),
        ("devices list", "/api/v1/devices/"),
        ("zoo models list", "/api/v1/zoo-models/"),
        ("datasets list", "/api/v1/datasets/"),
        ("training runs list", "/api/v1/training-runs/"),
        ("proxy checks list", "/api/v1/proxy-checks/"),
        ("presets", "/api/v1/presets/"),
        ("me", "/api/v1/me/"),
        ("teams", "/api/v1/teams/"),
    ]


def _cpu_by_process(server: subprocess.Popen) -> dict[str, float]:
    """User + system CPU seconds so far of gunicorn (master and workers), PostgreSQL's processes, Redis servers and
    this process (the load generator's client threads)."""
    import psutil

    totals: dict[str, float] = {}

    def add(name: str, proc: psutil.Process) -> None:
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        totals[name] = totals.get(name, 0.0) + t.user + t.system

    master = psutil.Process(server.pid)
    for proc in [master, *master.children(recursive=True)]:
        add("gunicorn (web)", proc)
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith("postgres"):
            add("PostgreSQL", proc)
        elif name.startswith("redis-server"):
            add("Redis", proc)
    add("load generator (this process)", psutil.Process())
    return totals


# ---- where ---------------------------------------------------------------------------------------------------------

def bench_where(args) -> None:
    """Where one web process spends a request of the read mix: sequential requests in this process (Django's test
    client through the whole middleware stack and the token authentication, no network), the database's share (its
    execute wrapper) and the exclusive time per package (cProfile)."""
    import cProfile
    import pstats

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("bench/api.py where measures PostgreSQL: set DATABASE_URL=postgres://...")
    db_url = fresh_postgres(url, "lts_bench_api")
    from workers.embedded_redis import EmbeddedRedis

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
    env = {"DATABASE_URL": db_url, "DEBUG": "0", "SECRET_KEY": "bench-" + "k7x" * 20, "LTS_LOCAL_HTTP": "1",
           "ALLOWED_HOSTS": "127.0.0.1", "LTS_VAR_DIR": tempfile.mkdtemp(prefix="lts-bench-"), "LOG_LEVEL": "WARNING"}
    setup_django(env)
    try:
        job_id, token, revision = _seed(args.candidates)
        from django.db import connection
        from django.test import Client

        client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
        paths = _paths("read", job_id, args.candidates, revision)
        db_s = [0.0]

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                db_s[0] += time.perf_counter() - started

        print(f"{args.requests} sequential requests per endpoint, in one process; {args.candidates:,} candidates; "
              f"machine: {machine()}")
        print("| endpoint | ms per request | of which database ms | queries |\n|---|---|---|---|")
        profiler = cProfile.Profile()
        total_s = total_db = 0.0
        for name, path in paths:
            for _ in range(5):  # warm: connection, caches
                client.get(path() if callable(path) else path)
            db_s[0] = 0.0
            with connection.execute_wrapper(timed):
                started = time.perf_counter()
                for _ in range(args.requests):
                    response = client.get(path() if callable(path) else path)
                    assert response.status_code == 200, (name, response.status_code)
                elapsed = time.perf_counter() - started
            profiler.enable()  # a second pass: cProfile slows pure-Python code several-fold, so it is not timed
            for _ in range(args.requests):
                client.get(path() if callable(path) else path)
            profiler.disable()
            total_s += elapsed
            total_db += db_s[0]
            print(f"| {name} | {elapsed / args.requests * 1000:.1f} | {db_s[0] / args.requests * 1000:.1f} | "
                  f"{_queries(client, path)} |")
        n = args.requests * len(paths)
        print(f"| mean over the mix | {total_s / n * 1000:.1f} | {total_db / n * 1000:.1f} | |")
        stats = pstats.Stats(profiler)
        groups: dict[str, float] = {}
        for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
            groups[_package(filename)] = groups.get(_package(filename), 0.0) + tottime
        profiled = sum(groups.values())
        print("\nExclusive time by package over the same requests (cProfile: a second, untimed pass; its overhead "
              "weighs most on the many small Python calls, the ORM's)")
        print("| package | share |\n|---|---|")
        for name, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
            print(f"| {name} | {seconds / profiled:.0%} |")
    finally:
        if redis:
            redis.stop()


def _queries(client, path) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(path() if callable(path) else path)
    return len(captured)


def _package(filename: str) -> str:
    """The library a function's file belongs to: site-packages/<name>/..., the project's app, or the standard library."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1:]
        if rest[:2] == ("django", "db"):
            return "django.db (ORM, SQL compiler)"
        if rest[:1] == ("django",):
            return f"django.{rest[1]}" if len(rest) > 2 else "django"
        return rest[0]
    if str(ROOT) in filename:
        return f"project: {Path(filename).relative_to(ROOT).parts[0]}"
    if filename.startswith("<") or filename == "~":
        return "builtins (C functions: json, hashing, socket reads...)"
    return "python standard library"


# ---- orchestration --------------------------------------------------------------------------------------------------

def bench_orchestration(args) -> None:
    var = tempfile.mkdtemp(prefix="lts-bench-orch-")
    from workers.embedded_redis import EmbeddedRedis

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
    env = {"DEBUG": "1", "LTS_VAR_DIR": var, "LTS_DEVICE": "bench-local", "LOG_LEVEL": "WARNING"}
    setup_django(env)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from lts_web.services import do_create_team
    from searches import services
    from searches.models import Device, SearchJob
    from searches.specs import normalize_spec

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    team = do_create_team("bench", user)
    celery = [sys.executable, "-m", "celery", "-A", "lts_web", "worker", "-l", "WARNING", "--without-gossip",
              "--without-mingle"]
    procs = [subprocess.Popen([*celery, "-Q", "control", "-n", "control@%h"], cwd=ROOT, env=os.environ.copy(),
                              start_new_session=True),
             subprocess.Popen([*celery, "-Q", "profile.bench-local", "-n", "profile@%h", "--concurrency", "1"],
                              cwd=ROOT, env=os.environ.copy(), start_new_session=True)]
    try:
        while not Device.objects.filter(name="bench-local").exists():
            time.sleep(0.2)
        from workers.tasks import ping

        ping.delay().get(timeout=120)  # the control worker is up too: its start-up is not orchestration
        spec = normalize_spec({"preset": "tiny", "device": "bench-local", "budget": {"generations": args.generations},
                               "seed": args.seed})
        job = services.do_create_search(owner=user, team=team, name="overhead", spec=spec)
        while job.status not in SearchJob.FINISHED:
            time.sleep(0.2)
            job.refresh_from_db()
    finally:
        for p in procs:
            stop(p)
        if redis:
            redis.stop()
    rows = list(job.candidates.select_related("measurement"))
    wall = (job.finished_at - job.created_at).total_seconds()
    measuring = sum(c.measurement.wall_s for c in rows if not c.cache_hit)
    overhead = wall - measuring
    print(f"tiny preset, {args.generations} generations, seed {args.seed}: {len(rows)} candidates, status {job.status}")
    print(f"job wall {wall:.1f} s, measuring {measuring:.1f} s (sum of profile() wall times), overhead "
          f"{overhead:.2f} s = {overhead / len(rows) * 1000:.0f} ms per candidate = {overhead / measuring:.1%} of the "
          f"measuring time; machine: {machine()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    h = sub.add_parser("http")
    h.add_argument("--candidates", type=int, default=100_000)
    h.add_argument("--clients", type=int, default=20)
    h.add_argument("--seconds", type=float, default=30)
    h.add_argument("--workers", type=int, default=2)
    h.add_argument("--threads", type=int, default=8)
    h.add_argument("--think", type=float, default=1.0, help="seconds between a client's requests (0: closed loop)")
    h.add_argument("--endpoints", choices=("search", "read"), default="search",
                   help="search: the search page's three reads; read: every read endpoint of the API in turn")
    w = sub.add_parser("where")
    w.add_argument("--candidates", type=int, default=100_000)
    w.add_argument("--requests", type=int, default=100)
    o = sub.add_parser("orchestration")
    o.add_argument("--generations", type=int, default=3)
    o.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    {"http": bench_http, "where": bench_where, "orchestration": bench_orchestration}[args.part](args)


if __name__ == "__main__":
    main()
