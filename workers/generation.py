"""The generation task on the `generate` queue: load (or reuse) a zoo model and stream its text into the request's
Redis stream (keys and events: models_zoo/generation_protocol.py; models_zoo/generation.py reads it). Each worker
process keeps recently used models loaded within LTS_GENERATE_CACHE_MB."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import shared_task
from django.conf import settings

from models_zoo import generation_protocol as protocol
from models_zoo.core.generation import GenerationError, ModelCache, SamplingSettings, generate
from models_zoo.models import ZooModel

__all__ = ["generate_text"]

log = logging.getLogger(__name__)
_CACHE: ModelCache | None = None
_CANCEL_CHECK_S = 0.2  # how often a running generation asks whether its reader went away


def _cache() -> ModelCache:
    global _CACHE
    if _CACHE is None:
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars fill worker logs otherwise
        if settings.LTS_GENERATE_THREADS:
            torch.set_num_threads(settings.LTS_GENERATE_THREADS)
        _CACHE = ModelCache(settings.LTS_GENERATE_CACHE_MB * 2**20)
    return _CACHE


class _Publisher:
    """Appends a request's events to its Redis stream from a thread of its own, so generation never waits on Redis,
    at most one append per LTS_GENERATE_STREAM_INTERVAL_S (20 ms: 50 updates a second). Text produced meanwhile goes
    out as one event (its `tokens` is the latest count): a model slower than 50 tokens/s sends every token on its own;
    a faster one sends a few per event instead of paying Redis, the web server and the browser once per token
    (one event per token cost a 0.4M-parameter model 25-35% of its 300-400 tokens/s on 2 busy cores,
    bench/generation.py)."""

    def __init__(self, request_id: str):
        self.redis = protocol.connection()
        self.key = protocol.STREAM_KEY.format(request_id)
        self.cancel_key = protocol.CANCEL_KEY.format(request_id)
        self._checked = 0.0
        self._cancelled = False
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Publisher:
        self._thread = threading.Thread(target=self._run, name="lts-generate-publisher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        assert self._thread is not None
        self._thread.join()

    def send(self, event: str, data: dict[str, Any]) -> None:
        with self._wake:
            last = self._pending[-1] if self._pending else None
            if event == protocol.TEXT and last is not None and last[0] == protocol.TEXT:
                last[1]["text"] += data["text"]
                last[1]["tokens"] = data["tokens"]
            else:
                self._pending.append((event, dict(data)))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            sent = time.monotonic()
            pipe = self.redis.pipeline(transaction=False)
            for event, data in batch:
                pipe.xadd(self.key, protocol.encode(event, data))
            pipe.execute()
            with self._wake:  # the next append waits out the interval, unless the generation has ended
                remaining = settings.LTS_GENERATE_STREAM_INTERVAL_S - (time.monotonic() - sent)
                if remaining > 0 and not self._closed:
                    self._wake.wait_for(lambda: self._closed, timeout=remaining)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._checked >= _CANCEL_CHECK_S:
            self._checked = now
            self._cancelled = bool(self.redis.exists(self.cancel_key))
        return self._cancelled


@shared_task(name="workers.generation.generate_text", acks_late=False, ignore_result=True)
def generate_text(request_id: str, model_id: int, prompt: str, sampling: dict[str, Any]) -> None:
    """At most once (acks_late off): a replay would append a second copy of the text to the same stream."""
    with _Publisher(request_id) as out:
        _generate(out, request_id, model_id, prompt, sampling)


def _generate(out: _Publisher, request_id: str, model_id: int, prompt: str, sampling: dict[str, Any]) -> None:
    if out.redis.exists(out.cancel_key):  # the reader left while this waited in the queue
        return
    out.send(protocol.ACCEPTED, {})
    model = ZooModel.objects.filter(pk=model_id).first()
    if model is None:
        out.send(protocol.ERROR, {"detail": f"zoo model {model_id} no longer exists", "status": 404})
        return
    try:
        loaded, cached = _cache().get(model.folder)
        out.send(protocol.START, {"model": model.pk, "loaded_from_cache": cached,
                           "load_s": 0.0 if cached else round(loaded.load_s, 6), "worker_pid": os.getpid()})
        result = generate(loaded, prompt, SamplingSettings(**sampling), limits=protocol.limits(),
                          on_text=lambda text, n: out.send(protocol.TEXT, {"text": text, "tokens": n}),
                          should_stop=out.cancelled)
    except GenerationError as exc:
        out.send(protocol.ERROR, {"detail": "; ".join(exc.errors.values()), "errors": exc.errors, "status": 400})
        return
    except Exception as exc:  # reported to the reader, not retried: the user decides whether to ask again
        log.exception("generation %s from zoo model %s failed", request_id, model_id)
        out.send(protocol.ERROR, {"detail": f"generation failed: {exc.__class__.__name__}: {exc}", "status": 502})
        return
    out.send(protocol.DONE, result.to_dict())
