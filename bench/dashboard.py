"""Search detail page in headless Chromium: time until its charts are drawn with 10,000 and 100,000 candidates, and
the bytes of one live poll.

    .venv/bin/python bench/dashboard.py                                                   # SQLite in a temp folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/dashboard.py   # PostgreSQL

Seeds finished searches with N measured candidates (database lts_bench_dashboard on PostgreSQL, dropped and
re-created), runs `collectstatic` and gunicorn with DEBUG off (whitenoise, as in production), and opens the detail page
in Debian's chromium through Playwright, each time in a fresh browser context (nothing cached) and then reloaded
(Plotly.js from the browser cache). The figure is the page's own mark, window.LTS_FIRST_DRAW_MS: milliseconds from
the start of navigation until every chart shown on load has been drawn (Plotly.react resolved) and the next frame has
begun. The 3-D view is off until a user turns it on (remembered per browser): that is timed separately, from the
click to its drawn frame. A cold-load comparison with the plotly wheel's full Plotly.js (and any other Plotly.js build
given with --also-bundle, such as an earlier one of the project's) runs in the same session.
Goals: under 2 s at 10,000 and under 5 s at 100,000 candidates.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (
    free_port,
    fresh_postgres,
    host_probe_line,
    machine,
    start_gunicorn,
    stop,
    wait_quiet,
)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PER_GENERATION = 100  # candidates per generation: 100,000 candidates are 1,000 generations
QUIET_BELOW, MAX_WAIT_S = 0.3, 30.0  # each page load waits (up to 30 s) until the machine's busy cores fall below 0.3
# ... and, unless --any-host-speed, until a host probe is within 10% of the fastest seen (bench/common.py)
FAST_HOST: float | None = 0.10


def settle() -> float:
    return wait_quiet(QUIET_BELOW, MAX_WAIT_S, fast_host=FAST_HOST)








def _seed(sizes: list[int]) -> tuple[dict[int, int], str, str]:
    """One finished search per size, all measured on one device; returns ({size: job id}, session key, token)."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connection
    from knox.models import AuthToken

    from lts_web.services import do_create_team
    from searches.core.arch import Architecture
    from searches.core.pareto import pareto_mask
    from searches.models import Candidate, Device, Measurement, SearchJob
    from searches.specs import normalize_spec

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    team = do_create_team("bench", user)
    device = Device.objects.create(name="bench", hardware={"cpu_model": "bench"}, backends=["torch"])
    n = max(sizes)
    combos = list(itertools.product(range(1, 25), range(64, 4096, 64), range(64, 4096, 64), (1, 2, 4)))
    random.Random(0).shuffle(combos)
    archs = [Architecture(n_layer=n_layer, d_model=d, d_inner=i, n_head=h) for n_layer, d, i, h in combos[:n]]
    noise = np.random.default_rng(0)
    proxies = np.array([a.non_embedding_params for a in archs], dtype=float)
    latency = proxies * 4e-8 * noise.lognormal(0, 0.3, n) + 0.01
    memory = proxies * 4 / 2**20 * noise.lognormal(0, 0.2, n) + 30
    measurements: list[Measurement] = []
    for start in range(0, n, 5000):
        measurements += Measurement.objects.bulk_create([
            Measurement(archid=archs[i].archid, config=archs[i].to_dict(), device=device, backend="torch",
                        batch_size=1, seq_len=1024, threads=1, mode="prefill", dtype="float32", status="done",
                        latency_median_s=latency[i], peak_memory_mb=memory[i], wall_s=1.0)
            for i in range(start, min(n, start + 5000))])
    spec = normalize_spec({"preset": "gpt2-lts", "device": "bench", "budget": {"generations": n // PER_GENERATION}})
    jobs = {}
    for size in sizes:
        generations = size // PER_GENERATION
        pareto = pareto_mask(np.column_stack([proxies[:size], latency[:size], memory[:size]]),
                             ["maximize", "minimize", "minimize"])
        history = [{"generation": g, "hypervolume": 1e6 * (1 - 0.5 / (g + 1)), "frontier_size": int(pareto.sum()),
                    "candidates": (g + 1) * PER_GENERATION, "reference": [0.0, 1.0, 1000.0]} for g in range(generations)]
        job = SearchJob.objects.create(
            owner=user, team=team, name=f"{size:,} candidates", spec=spec, device=device, status="completed",
            generation=generations, revision=generations + 1, hypervolumes=history,
            counts={"candidates": size, "measured": size, "measuring": 0, "failed": 0, "pareto": int(pareto.sum())})
        for start in range(0, size, 5000):
            chunk = range(start, min(size, start + 5000))
            Candidate.objects.bulk_create([
                Candidate(job=job, archid=archs[i].archid, config=archs[i].to_dict(), generation=i // PER_GENERATION,
                          position=i % PER_GENERATION, origin="mutation", parents=[archs[i - 1].archid] if i else [],
                          n_layer=archs[i].n_layer, d_model=archs[i].d_model, d_inner=archs[i].d_inner,
                          n_head=archs[i].n_head, non_embedding_params=archs[i].non_embedding_params,
                          total_params=archs[i].total_params, measurement=measurements[i], status="measured",
                          feasible=True, is_pareto=bool(pareto[i]), revision=i // PER_GENERATION + 1)
                for i in chunk])
        jobs[size] = job.pk
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return jobs, session.session_key, AuthToken.objects.create(user=user)[1]


def _live_poll(port: int, token: str, job_id: int, changes: int) -> dict[str, int]:
    """Make the search live, change `changes` candidates as one orchestration step would (one revision bump), and
    fetch what the page's next poll fetches."""
    from django.db.models import F

    from searches.models import Candidate, SearchJob

    job = SearchJob.objects.get(pk=job_id)
    before = job.revision
    SearchJob.objects.filter(pk=job_id).update(status="running", revision=F("revision") + 1)
    ids = list(job.candidates.order_by("-generation", "-position").values_list("id", flat=True)[:changes])
    Candidate.objects.filter(id__in=ids).update(revision=before + 1, is_pareto=True)
    out = {}
    for name, extra in (("page", f"&hypervolumes_from={len(job.hypervolumes)}"), ("whole", "")):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", f"/api/v1/candidates/?job={job_id}&after={before}{extra}",
                     headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
        response = conn.getresponse()
        body = response.read()
        headers = sum(len(k) + len(v) + 4 for k, v in response.getheaders()) + len("HTTP/1.1 200 OK\r\n\r\n")
        data = json.loads(body)
        assert len(data["results"]) == changes, data
        out[name] = {"body": len(body), "headers": headers,
                     "rows": len(json.dumps(data["results"], separators=(",", ":"))),
                     "job": len(json.dumps(data["job"], separators=(",", ":")))}
    SearchJob.objects.filter(pk=job_id).update(status="completed")
    return out


def _fetch(port: int, token: str, path: str) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
    body = conn.getresponse().read()
    return time.perf_counter() - started, len(body)


def _page_timings(browser, url: str, session: str, repeats: int) -> dict[str, list[float]]:
    """Cold: a fresh context each time (Plotly.js downloaded and compiled); warm: the same page reloaded."""
    out: dict[str, list[float]] = {"cold": [], "warm": [], "cold_2d": [], "warm_2d": [], "points_ms": [],
                                   "points_bytes": [], "three_ms": []}
    host = urlsplit(url).hostname
    draw = "() => window.LTS_FIRST_DRAW_MS !== undefined"
    for _ in range(repeats):
        settle()
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies([{"name": "sessionid", "value": session, "domain": host, "path": "/"}])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        for kind in ("cold", "warm"):
            if kind == "cold":
                page.goto(url)
            else:
                settle()
                page.reload()
            page.wait_for_function(draw, timeout=120_000)
            out[kind].append(page.evaluate("window.LTS_FIRST_DRAW_MS"))
            out[f"{kind}_2d"].append(page.evaluate("window.LTS_CHARTS_2D_MS"))
            phases = page.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const points = performance.getEntriesByType('resource').find((e) => e.name.includes('/points/'));
                const mark = (name) => performance.getEntriesByName(name)[0]?.startTime;
                return {scripts: nav.domContentLoadedEventEnd, points: points.responseEnd,
                        points_ms: points.responseEnd - points.startTime, bytes: points.encodedBodySize,
                        parsed: mark('lts:points-received'), draw_start: mark('lts:draw-start'),
                        frontier: mark('lts:drawn-frontier'), table: mark('lts:table'),
                        charts_2d: window.LTS_CHARTS_2D_MS, all: window.LTS_FIRST_DRAW_MS};
            }""")
            out["points_ms"].append(phases["points_ms"])
            out["points_bytes"].append(phases["bytes"])
            out.setdefault(f"{kind}_phases", []).append(phases)
            shown = page.evaluate("document.getElementById('chart-frontier').dataset.points")
            assert int(shown) > 0 and not errors, (shown, errors)
        # then the 3-D view, off by default: from the click on its checkbox until drawn and the next frame begun
        settle()
        clicked = page.evaluate("() => { const t = performance.now(); document.getElementById('show-3d').click(); "
                                "return t; }")
        page.wait_for_function("() => window.LTS_3D_MS !== undefined", timeout=120_000)
        out["three_ms"].append(page.evaluate("window.LTS_3D_MS") - clicked)
        assert page.evaluate("document.getElementById('chart-3d').dataset.points") == shown and not errors
        context.close()
    return out


def _loaded_bytes() -> int:
    """What a page load fetches of the project's Plotly.js: the module and the chunks it imports statically (not the
    3-D chunk, fetched when the view is turned on)."""
    folder = ROOT / "lts_web" / "static" / "plotly"
    main = (folder / "plotly-lts.js").read_text(encoding="utf-8")
    static_imports = set(re.findall(r"""\bfrom\s*["']\./([^"']+)["']""", main))
    return sum((folder / name).stat().st_size for name in {"plotly-lts.js", *static_imports})


def _as_module(source: Path, target: Path) -> None:
    """A classic Plotly.js bundle (the wheel's UMD one, or an IIFE `var Plotly = ...`) made loadable in place of the
    page's module: the global set, and load3d() a no-op since the bundle holds scatter3d already."""
    target.write_text(source.read_text(encoding="utf-8") + """
;(function (P) { window.Plotly = P; P.load3d = P.load3d || function () { return Promise.resolve(P); }; })(
  typeof Plotly !== "undefined" ? Plotly : window.Plotly);
""", encoding="utf-8")


def _send_on(target: str | None):
    """A route handler that sends the request on to gunicorn, to `target` instead when given."""
    return lambda route: route.continue_(url=target) if target else route.continue_()


def _bundle_ab(browser, url: str, session: str, repeats: int, others: dict[str, Path]
               ) -> dict[str, dict[str, list[float]]]:
    """Cold loads with the project's Plotly.js against the plotly wheel's full one and any others (each written as a
    module into the collected statics before gunicorn starts), in turn; every request for the page's Plotly.js module
    intercepted alike and sent on to gunicorn."""
    from django.conf import settings

    base = url.split("/searches/")[0] + "/static/bench/"
    bundles = {"project bundle": (None, _loaded_bytes())}
    for name, source in others.items():
        bundles[name] = (base + _bench_name(name), source.stat().st_size)
        assert (Path(settings.STATIC_ROOT) / "bench" / _bench_name(name)).exists()
    host = urlsplit(url).hostname
    out: dict[str, dict[str, list[float]]] = {name: {"scripts": [], "all": []} for name in bundles}
    for i in range(repeats):
        for name in (list(bundles) if i % 2 == 0 else list(bundles)[::-1]):  # in turn, each first as often
            settle()
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": "sessionid", "value": session, "domain": host, "path": "/"}])
            target = bundles[name][0]
            context.route("**/static/plotly/plotly-lts.*js",  # the module, by its versioned name (not its chunks)
                          _send_on(target))
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("() => window.LTS_FIRST_DRAW_MS !== undefined", timeout=120_000)
            scripts, every = page.evaluate("""() => [
                performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd, window.LTS_FIRST_DRAW_MS]""")
            assert int(page.evaluate("document.getElementById('chart-frontier').dataset.points")) > 0
            for key, value in (("scripts", scripts), ("all", every)):
                out[name][key].append(value)
            context.close()
    for name, (_, size) in bundles.items():
        out[name]["bytes"] = [size]
    return out


def _bench_name(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label) + ".js"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--changes", type=int, default=5, help="candidates changed before the measured live poll")
    parser.add_argument("--no-bundle-ab", action="store_true",
                        help="skip the cold loads with the plotly wheel's full Plotly.js for comparison")
    parser.add_argument("--also-bundle", action="append", default=[], metavar="LABEL=PATH",
                        help="another classic Plotly.js build to compare cold loads with (one holding scatter, "
                             "scattergl and scatter3d), e.g. an earlier one of the project's: "
                             "git show 907796f:lts_web/static/plotly/plotly-lts.min.js > /tmp/single.js")
    parser.add_argument("--any-host-speed", action="store_true",
                        help="do not wait for the host's slow phases to pass before each page load")
    args = parser.parse_args()
    others: dict[str, Path] = {}
    for spec in args.also_bundle:
        label, _, path = spec.partition("=")
        if not label or not path or not Path(path).is_file():
            parser.error(f"--also-bundle {spec!r}: expected LABEL=PATH of an existing file")
        others[label] = Path(path)
    if args.no_bundle_ab and others:
        parser.error("--also-bundle needs the comparison: drop --no-bundle-ab")
    global FAST_HOST
    FAST_HOST = None if args.any_host_speed else FAST_HOST
    sizes = [int(s) for s in args.sizes.split(",")]

    var = tempfile.mkdtemp(prefix="lts-bench-dashboard-")
    url = os.environ.get("DATABASE_URL", "")
    db_url = fresh_postgres(url, "lts_bench_dashboard") if url.startswith("postgres") else f"sqlite:///{var}/db.sqlite3"
    from workers.embedded_redis import EmbeddedRedis

    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        os.environ["REDIS_URL"] = redis.url
    env = {"DATABASE_URL": db_url, "DEBUG": "0", "SECRET_KEY": "bench-" + "k7x" * 20, "SECURE_SSL_REDIRECT": "0",
           "ALLOWED_HOSTS": "127.0.0.1", "LTS_VAR_DIR": var, "LOG_LEVEL": "WARNING", "DJANGO_ALLOW_ASYNC_UNSAFE": "1"}
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
    import django

    django.setup()
    from django.core.management import call_command

    t0 = time.monotonic()
    jobs, session, token = _seed(sizes)
    print(f"seeded {', '.join(f'{s:,}' for s in sizes)} candidates in {time.monotonic() - t0:.1f} s", flush=True)
    call_command("collectstatic", "--noinput", verbosity=0)
    if not args.no_bundle_ab:  # the plotly wheel's full Plotly.js, for the comparison (whitenoise serves STATIC_ROOT)
        import plotly
        from django.conf import settings

        others = {"full plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js", **others}
        (Path(settings.STATIC_ROOT) / "bench").mkdir(exist_ok=True)
        for label, source in others.items():
            _as_module(source, Path(settings.STATIC_ROOT) / "bench" / _bench_name(label))
    port = free_port()
    server = start_gunicorn(port, os.environ.copy(), workers=2, threads=4)
    from playwright.sync_api import sync_playwright

    results = {}
    try:
        load = os.getloadavg()[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            version = browser.version
            for size in sizes:
                _fetch(port, token, f"/api/v1/searches/{jobs[size]}/points/")  # warm the database pages
                results[size] = _page_timings(browser, f"http://127.0.0.1:{port}/searches/{jobs[size]}/", session,
                                              args.repeats)
                api = [_fetch(port, token, f"/api/v1/searches/{jobs[size]}/points/") for _ in range(3)]
                results[size]["api_s"] = statistics.median(a[0] for a in api)
                results[size]["api_bytes"] = api[0][1]
                rows = [_fetch(port, token, f"/api/v1/candidates/?job={jobs[size]}&limit=20000&offset={o}")
                        for o in range(0, size, 20000)]
                results[size]["rows_s"] = sum(r[0] for r in rows)
                results[size]["rows_bytes"] = sum(r[1] for r in rows)
                if not args.no_bundle_ab:
                    results[size]["ab"] = _bundle_ab(browser, f"http://127.0.0.1:{port}/searches/{jobs[size]}/",
                                                     session, args.repeats, others)
                print(f"{size:,}: charts shown on load cold {statistics.median(results[size]['cold']):.0f} ms, "
                      f"warm {statistics.median(results[size]['warm']):.0f} ms; 3-D view turned on "
                      f"{statistics.median(results[size]['three_ms']):.0f} ms", flush=True)
            browser.close()
        poll = _live_poll(port, token, jobs[max(sizes)], args.changes)
    finally:
        stop(server)
        if redis:
            redis.stop()
        shutil.rmtree(var, ignore_errors=True)  # the SQLite file of 100,000 candidates and the collected statics

    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    from importlib.metadata import version as package_version

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print("\n## Dashboard: search detail page (bench/dashboard.py)\n")
    print(f"Command: `{'DATABASE_URL=postgres://... ' if engine == 'postgresql' else ''}python bench/dashboard.py "
          f"--repeats {args.repeats}` · {stamp}")
    print(f"Machine: {machine()} (load average {load:.2f} before the browser runs); database {engine}; "
          f"gunicorn 2 workers x 4 threads, DEBUG off, whitenoise; Chromium {version} headless (SwiftShader WebGL, "
          f"--disable-gpu), Playwright {package_version('playwright')}")
    print(f"Each load waited for a quiet machine{' and a fast host' if FAST_HOST is not None else ''}: "
          f"{host_probe_line()}.")
    print(f"Median of {args.repeats}. Cold: a fresh browser context (Plotly.js, the project's {_loaded_bytes() / 1e6:.1f} MB "
          "on load, downloaded and compiled; its 3-D chunk when the view is turned on); warm: the page reloaded.\n")
    print("| candidates | every chart shown on load (2-D views, hypervolume, table), cold / warm | goal "
          "| 3-D view turned on: click to drawn | points body | points API alone | the same as 20,000-row pages |"
          "\n|---|---|---|---|---|---|---|")
    goals = {10_000: 2000, 100_000: 5000}
    for size in sizes:
        r = results[size]
        cold, warm = statistics.median(r["cold"]), statistics.median(r["warm"])
        goal = goals.get(size)
        verdict = (f"< {goal / 1000:.0f} s: {'met' if cold < goal else 'MISSED'} cold, "
                   f"{'met' if warm < goal else 'MISSED'} warm") if goal else ""
        print(f"| {size:,} | {cold / 1000:.2f} s / {warm / 1000:.2f} s | {verdict} "
              f"| {statistics.median(r['three_ms']) / 1000:.2f} s | {r['api_bytes'] / 1e6:.1f} MB "
              f"| {r['api_s'] * 1000:.0f} ms | {r['rows_s'] * 1000:.0f} ms, {r['rows_bytes'] / 1e6:.1f} MB |")
    print("\nWhere the time goes (median ms since navigation start; cold / warm): scripts = DOMContentLoaded (Plotly.js "
          "compiled), points = columns received, parsed = JSON parsed and stored, then each chart drawn.\n")
    print("| candidates | scripts | points | parsed | 2-D views (one figure) | + hypervolume, next frame | table, "
          "all drawn |\n|---|---|---|---|---|---|---|")
    for size in sizes:
        cells = []
        for key in ("scripts", "points", "parsed", "frontier", "charts_2d", "all"):
            cold, warm = (statistics.median(p[key] for p in results[size][f"{kind}_phases"]) for kind in ("cold", "warm"))
            cells.append(f"{cold:,.0f} / {warm:,.0f}")
        print(f"| {size:,} | " + " | ".join(cells) + " |")
    if not args.no_bundle_ab:
        more = " and others" if len(others) > 1 else ""
        print(f"\nCold loads, the project's Plotly.js against the plotly wheel's full one{more} "
              f"(median of {args.repeats} each, in turn, every request for the page's Plotly.js intercepted by "
              f"Playwright and sent on to gunicorn; size: what a load fetches):\n")
        print("| candidates | bundle | size | scripts (DOMContentLoaded) | every chart shown on load |"
              "\n|---|---|---|---|---|")
        for size in sizes:
            ab = results[size]["ab"]
            for name, r in ab.items():
                print(f"| {size:,} | {name} | {r['bytes'][0] / 1e6:.1f} MB | {statistics.median(r['scripts']):,.0f} ms "
                      f"| {statistics.median(r['all']):,.0f} ms |")
            ours = ab["project bundle"]
            for name, other in ab.items():
                if name != "project bundle":
                    print(f"| {size:,} | ratio, project / {name} | "
                          f"| {statistics.median(ours['scripts']) / statistics.median(other['scripts']):.2f} "
                          f"| {statistics.median(ours['all']) / statistics.median(other['all']):.2f} |")
    page, whole = poll["page"], poll["whole"]
    print(f"\nOne live poll, as the page sends it, after {args.changes} candidates of the {max(sizes):,}-candidate search "
          f"changed ({max(sizes) // PER_GENERATION:,} generations): {page['headers'] + page['body']:,} bytes "
          f"({page['headers']:,} of headers; body {page['body']:,}: {page['rows']:,} for the {args.changes} rows, "
          f"{page['job']:,} for the job's state). Without hypervolumes_from (the whole hypervolume history in every "
          f"poll): {whole['headers'] + whole['body']:,} bytes.")


if __name__ == "__main__":
    main()
