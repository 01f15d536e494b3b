"""Generation through the playground path against model.generate called directly, for a small and a 16M zoo model.

    .venv/bin/python bench/generation.py [--tokens 128] [--repeats 5] [--threads 1]

The playground path is the real one: gunicorn (gthread) serving POST /api/v1/models/<id>/generate/stream, a Celery
`generate` worker (one process, the model kept loaded), Redis in between (embedded), SQLite. The client measures
time to first token from sending the request to receiving the first `text` event, and tokens per second over the
tokens after the first. Direct: model.generate in this process with a streamer taking the same times. Both greedy,
same prompt, same thread count, alternating, after one warm-up each (the worker's warm-up loads the model).
Checkpoints: random weights with the GPT-2 BPE (vocabulary 50,257, ../shared/data/gpt2-bpe), context 1024.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, machine, start_gunicorn, stop

BPE = ROOT.parent / "shared" / "data" / "gpt2-bpe"
MODELS = {  # name -> architecture (the 16M one is the example: 16,042,240 non-embedding parameters)
    "small": {"n_layer": 2, "d_model": 128, "d_inner": 512, "n_head": 2},
    "16M": {"n_layer": 7, "d_model": 576, "d_inner": 832, "n_head": 8},
}
PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."


def _write_checkpoints(data: Path) -> None:
    from models_zoo.core.tokenizers import load_gpt2_files
    from searches.core.arch import Architecture, build_model

    tokenizer = load_gpt2_files(BPE)
    for name, arch in MODELS.items():
        model = build_model(Architecture.from_dict({**arch, "vocab_size": len(tokenizer), "max_sequence_length": 1024}))
        model.save_pretrained(str(data / name))
        tokenizer.save_pretrained(str(data / name))


def _direct(folder: Path, tokens: int) -> tuple[float, float, int]:
    """(time to first token s, tokens/s after the first, tokens) for one model.generate call."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    from models_zoo.core.generation import load_model

    if folder not in _LOADED:
        _LOADED[folder] = load_model(folder)
    loaded = _LOADED[folder]

    class Times(BaseStreamer):
        def __init__(self):
            self.times: list[float] = []
            self.first = True

        def put(self, value):
            if self.first:
                self.first = False
                return
            self.times.append(time.perf_counter())

        def end(self):
            pass

    streamer = Times()
    start = time.perf_counter()
    with torch.inference_mode():
        ids = loaded.tokenizer(PROMPT, return_tensors="pt")
        loaded.model.generate(**ids, max_new_tokens=tokens, do_sample=False,
                              pad_token_id=loaded.tokenizer.eos_token_id, streamer=streamer)
    t = streamer.times
    return t[0] - start, (len(t) - 1) / (t[-1] - t[0]), len(t)


_LOADED: dict = {}


def _playground(port: int, token: str, model_id: int, tokens: int) -> tuple[float, float, int, dict]:
    """(time to first token s, tokens/s after the first, tokens, the done event) through the HTTP stream."""
    body = json.dumps({"prompt": PROMPT, "greedy": True, "max_new_tokens": tokens})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", f"/api/v1/models/{model_id}/generate/stream", body=body,
                 headers={"Authorization": f"Token {token}", "Content-Type": "application/json",
                          "Accept": "text/event-stream"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {response.read()[:500]!r}")
    times: list[float] = []
    counts: list[int] = []
    done: dict = {}
    event = ""
    while True:
        line = response.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            if event == "start":
                done.update(data)
            elif event == "text":
                times.append(time.perf_counter())
                counts.append(data["tokens"])
            elif event == "done":
                done.update(data)
                break
            elif event == "error":
                raise RuntimeError(data)
    conn.close()
    # tokens per second over the tokens after the first one, as the direct figure
    return times[0] - start, (counts[-1] - counts[0]) / (times[-1] - times[0]), counts[-1], done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in the worker and here")
    args = parser.parse_args()
    if not (BPE / "encoder.json").exists():
        sys.exit(f"needs the GPT-2 BPE files in {BPE}")

    var = Path(tempfile.mkdtemp(prefix="lts-bench-gen-"))
    data, artifacts = var / "data", var / "artifacts"
    data.mkdir()
    from workers.embedded_redis import EmbeddedRedis

    redis = EmbeddedRedis().start()
    env = {**os.environ, "DEBUG": "1", "LTS_VAR_DIR": str(var), "REDIS_URL": redis.url, "LTS_DATA_ROOT": str(data),
           "LTS_ARTIFACT_ROOT": str(artifacts), "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
           "LTS_GENERATE_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "LTS_GENERATE_MAX_NEW_TOKENS": str(max(256, args.tokens)), "DJANGO_SETTINGS_MODULE": "lts_web.settings"}
    os.environ.update(env)
    import django
    import torch

    torch.set_num_threads(args.threads)
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    from lts_web.services import do_create_team
    from models_zoo import services

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    team = do_create_team("bench", user)
    token = AuthToken.objects.create(user=user)[1]
    _write_checkpoints(data)
    zoo = {name: services.do_import_model(owner=user, team=team, source=name, name=name) for name in MODELS}

    port = free_port()
    bin_ = Path(sys.executable).parent
    procs = [subprocess.Popen([str(bin_ / "celery"), "-A", "lts_web", "worker", "-Q", "generate", "--concurrency", "1",
                               "-n", "bench-gen@%h", "-l", "WARNING", "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=env, start_new_session=True)]
    try:
        procs.append(start_gunicorn(port, env, workers=1, threads=8))
        rows = []
        for name, model in zoo.items():
            folder = model.folder
            _playground(port, token, model.pk, 8)  # the worker loads the model
            _direct(folder, 8)
            direct, play = [], []
            for _ in range(args.repeats):
                direct.append(_direct(folder, args.tokens))
                p = _playground(port, token, model.pk, args.tokens)
                assert p[3]["loaded_from_cache"], "the worker should have kept the model loaded"
                play.append((*p[:3], p[3]["tokens_per_s"]))

            def med(xs, i):
                return statistics.median(x[i] for x in xs)

            rows.append({"model": name, "non_emb": model.non_embedding_params, "total": model.total_params,
                         "direct_ttft": med(direct, 0), "play_ttft": med(play, 0),
                         "direct_tps": med(direct, 1), "play_tps": med(play, 1), "worker_tps": med(play, 3),
                         "tokens": (med(direct, 2), med(play, 2))})
    finally:
        for proc in procs:
            stop(proc)
        redis.stop()

    print(f"\n`python bench/generation.py --tokens {args.tokens} --repeats {args.repeats} --threads {args.threads}` "
          f"on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC); machine: {machine()}; torch {torch.__version__}.")
    print(f"Greedy, prompt of {len(PROMPT)} characters, {args.tokens} new tokens, {args.threads} torch thread(s), "
          f"median of {args.repeats} alternating runs after a warm-up.\n")
    print("| model | non-emb. params | total params | direct tokens/s | playground tokens/s | playground / direct "
          "| in the worker tokens/s | direct first token | playground first token |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['non_emb']:,} | {r['total']:,} | {r['direct_tps']:.1f} | {r['play_tps']:.1f} | "
              f"{r['play_tps'] / r['direct_tps']:.1%} | {r['worker_tps']:.1f} | {r['direct_ttft'] * 1000:.1f} ms | "
              f"{r['play_ttft'] * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
