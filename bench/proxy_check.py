"""Proxy-check benchmark: one real check on tinyshakespeare through ``lts_proxy_check --local`` (the same service,
training path and zoo export as the web), then the scatter plot as a PNG and a markdown summary.

    python bench/proxy_check.py                 # ~15 min on 1 CPU thread: K=10, 131,072 and 262,144 tokens per model
    python bench/proxy_check.py --report-only   # redraw the figure and the summary from bench/results/proxy_check.json

Writes bench/results/proxy_check.json (the command's --json: the check, its result and every model),
bench/results/proxy_check.md and bench/results/proxy_check.png. The PNG is the page's Plotly figure rendered by
Debian's chromium through Playwright (both already used by the browser tests; no kaleido, no matplotlib); without
chromium the HTML is written beside it instead.

The space spans two decades of the proxy (34k to 4.7M non-embedding parameters: n_layer 1-6, d_model 64-256,
d_inner 128-1024) so that one thread trains a model in 10 s to 2.5 min at these budgets (14,500 tokens/s for the
smallest, 1,700 for the largest, measured here with batch 16 x 128).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
SPACE = {"n_layer": {"range": [1, 7, 1]}, "d_model": {"range": [64, 288, 32]}, "d_inner": {"range": [128, 1152, 128]},
         "n_head": [2, 4], "max_sequence_length": 128}
SETTINGS = {"k": 10, "max_tokens": 131_072, "tokenizer": "bpe:4096", "seq_len": 128, "batch_size": 16, "lr": 2e-3,
            "seed": 1}


def _setup(var: str) -> None:
    os.environ.update({"LTS_VAR_DIR": var, "DEBUG": "1", "OMP_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"})
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)  # SQLite in the temporary folder; --local needs no broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
    import django
    import torch

    torch.set_num_threads(1)
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from lts_web.services import do_create_team

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex())
    do_create_team("bench", user)


def run(args: argparse.Namespace) -> dict[str, Any]:
    var = tempfile.mkdtemp(prefix="lts-bench-proxy-")
    _setup(var)
    from django.core.management import call_command

    out = RESULTS / "proxy_check.json"
    command = ["lts_proxy_check", "--space", json.dumps(SPACE), "--data", str(args.data),
               "--tokenizer", SETTINGS["tokenizer"], "-k", str(args.k), "--max-tokens", str(args.max_tokens),
               "--compare-budget", "--seq-len", str(SETTINGS["seq_len"]), "--batch-size", str(SETTINGS["batch_size"]),
               "--lr", str(SETTINGS["lr"]), "--seed", str(SETTINGS["seed"]), "--local", "--user", "bench",
               "--name", "tinyshakespeare benchmark", "--json", str(out)]
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    call_command(*command)
    wall = time.perf_counter() - t0
    payload = json.loads(out.read_text())
    import torch

    payload["bench"] = {
        "command": "python bench/proxy_check.py  # = manage.py " + " ".join(
            c if not c.startswith("{") else f"'{c}'" for c in command).replace(str(out), "bench/results/proxy_check.json")
        .replace(str(args.data), os.path.relpath(args.data, ROOT)),
        "started_utc": started.strftime("%Y-%m-%d %H:%M"), "wall_s": wall, "torch_threads": 1,
        "machine": _machine(), "python": platform.python_version(), "torch": torch.__version__,
    }
    out.write_text(json.dumps(payload, indent=1))
    shutil.rmtree(var, ignore_errors=True)
    return payload


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


# ---- the figure -----------------------------------------------------------------------------------------------------


def _traces(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One series per budget: proxy (x) against validation perplexity (y), hover with the architecture."""
    traces = []
    for budget in payload["budgets"]:
        xs, ys, text = [], [], []
        for row in payload["models"]:
            run = next((r for r in row["runs"] if r["budget"] == budget), None)
            if run and run["status"] == "completed" and run["val_ppl"] is not None:
                xs.append(row["proxy"])
                ys.append(run["val_ppl"])
                text.append(f"{row['n_layer']}L d{row['d_model']} di{row['d_inner']}")
        traces.append({"x": xs, "y": ys, "text": text, "mode": "markers+text", "type": "scatter",
                       "textposition": "top center", "textfont": {"size": 9},
                       "name": f"{budget:,} tokens per model", "marker": {"size": 10}})
    return traces


def _title(payload: dict[str, Any]) -> str:
    result = payload["result"]
    lines = []

    def fmt(c):
        return f"{c['estimate']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c["low"] is not None else "n/a"

    for b in result["budgets"]:
        p = b["predictors"]
        lines.append(f"{b['tokens']:,} tokens: proxy rho {fmt(p['proxy']['spearman'])}, tau {fmt(p['proxy']['kendall'])}"
                     f" · total params rho {fmt(p['total_params']['spearman'])}")
    return "<br>".join(lines)


def figure(payload: dict[str, Any]) -> Path:
    import plotly

    layout = {"width": 900, "height": 560, "margin": {"t": 80, "r": 20, "b": 60, "l": 70},
              "title": {"text": _title(payload), "font": {"size": 13}},
              "xaxis": {"type": "log", "title": {"text": "non-embedding parameters (the LTS proxy)"}},
              "yaxis": {"type": "log", "title": {"text": "validation perplexity (log)"}},
              "legend": {"orientation": "h", "y": -0.15}, "paper_bgcolor": "white", "plot_bgcolor": "#f6f8fa"}
    script = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    html = (f"<!doctype html><html><head><meta charset='utf-8'><script>{script.read_text()}</script></head>"
            f"<body style='margin:0'><div id='plot'></div><script>Plotly.newPlot('plot', {json.dumps(_traces(payload))},"
            f" {json.dumps(layout)}, {{staticPlot: true}}).then(() => document.body.dataset.ready = '1');</script>"
            "</body></html>")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    target = RESULTS / "proxy_check.png"
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "figure.html"
        page.write_text(html)
        if chromium is None:
            fallback = RESULTS / "proxy_check.html"
            shutil.copyfile(page, fallback)
            print(f"no chromium (apt-get install chromium): wrote {fallback} instead of a PNG")
            return fallback
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            tab = browser.new_page(viewport={"width": 900, "height": 560})
            tab.goto(page.as_uri())
            tab.wait_for_selector("body[data-ready='1']", timeout=30_000)
            tab.screenshot(path=str(target))
            browser.close()
    return target


# ---- the summary ----------------------------------------------------------------------------------------------------


def _ci(c: dict[str, Any]) -> str:
    if c["estimate"] is None:
        return "undefined"
    return f"{c['estimate']:+.3f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c["low"] is not None else f"{c['estimate']:+.3f}"


def summary(payload: dict[str, Any]) -> str:
    from models_zoo.proxy_checks.core import PREDICTORS, interpret

    bench, result = payload["bench"], payload["result"]
    result["sentence"] = interpret(result, planned=payload["sample_size"])  # the current wording
    lines = [f"Command: `{bench['command']}`", "",
             f"Date {bench['started_utc']} UTC · machine: {bench['machine']} (shared with another session) · "
             f"python {bench['python']}, torch {bench['torch']}, {bench['torch_threads']} thread · wall time "
             f"{bench['wall_s'] / 60:.1f} min for {len(payload['models']) * len(payload['budgets'])} runs "
             "(BPE training, tokenization, training, evaluation and zoo export of each).", "",
             f"Data: {payload['dataset']}; tokenizer {payload['tokenizer']}; settings {json.dumps(payload['config'])}; "
             f"space {json.dumps(payload['space'])}; K = {payload['sample_size']} drawn across log(proxy), seed "
             f"{payload['seed']}.", ""]
    for b in result["budgets"]:
        lines += [f"After {b['tokens']:,} tokens per model ({b['n']} models, {b['failed']} failed):", "",
                  "| predictor | Spearman rho [95% CI] | Kendall tau [95% CI] | larger model better in |",
                  "|---|---|---|---|"]
        for name, label in PREDICTORS.items():
            p = b["predictors"][name]
            share = f"{p['concordance']:.0%} of pairs" if p["concordance"] is not None else "-"
            lines.append(f"| {label} | {_ci(p['spearman'])} | {_ci(p['kendall'])} | {share} |")
        lines.append("")
    a = result.get("agreement")
    if a:
        lines += [f"Agreement of the rankings after {a['from_tokens']:,} and {a['to_tokens']:,} tokens: Spearman "
                  f"{_ci(a['spearman'])}, Kendall {_ci(a['kendall'])} ({a['n']} models).", ""]
    lines += [f"Reading (the page's sentence): {result['sentence']}", "",
              "| layers | d_model | d_inner | heads | proxy | total params | " +
              " | ".join(f"ppl @ {b:,}" for b in payload["budgets"]) + " |",
              "|---" * (6 + len(payload["budgets"])) + "|"]
    for row in payload["models"]:
        cells = {r["budget"]: r for r in row["runs"]}
        ppl = [f"{cells[b]['val_ppl']:.2f}" if b in cells and cells[b]["val_ppl"] is not None else
               (cells[b]["status"] if b in cells else "-") for b in payload["budgets"]]
        lines.append(f"| {row['n_layer']} | {row['d_model']} | {row['d_inner']} | {row['n_head']} | {row['proxy']:,} | "
                     f"{row['total_params']:,} | " + " | ".join(ppl) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("-k", type=int, default=SETTINGS["k"])
    parser.add_argument("--max-tokens", type=int, default=SETTINGS["max_tokens"])
    parser.add_argument("--report-only", action="store_true", help="redraw from bench/results/proxy_check.json")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
        payload = json.loads((RESULTS / "proxy_check.json").read_text())
    else:
        if not args.data.is_file():
            sys.exit(f"{args.data} is missing (see ../shared/data/tinyshakespeare/SOURCE.md)")
        payload = run(args)
    print(f"figure: {figure(payload)}")
    (RESULTS / "proxy_check.md").write_text(summary(payload))
    print((RESULTS / "proxy_check.md").read_text())


if __name__ == "__main__":
    main()
