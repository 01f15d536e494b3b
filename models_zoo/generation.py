"""Generation requests from the web side: validate, hold a per-user slot, hand the work to a `generate` worker, and
read its events back as they are produced.

The worker (workers/generation.py) appends events to a Redis stream, one per request (the keys and events are in
models_zoo/generation_protocol.py). A stream, not pub/sub, so a reader that arrives after the first tokens misses
nothing; the streaming and the non-streaming endpoints read the same events.
"""
from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from lts_web import queueing
from models_zoo import generation_protocol as protocol
from models_zoo.core.generation import GenerationError, SamplingSettings, encode_prompt
from models_zoo.generation_protocol import CANCEL_KEY, STREAM_KEY, connection, limits
from models_zoo.models import ZooModel

__all__ = ["ACTIVE_KEY", "CANCEL_KEY", "GenerationHandle", "LimitExceeded", "STREAM_KEY", "check_request", "collect",
           "connection", "do_start_generation", "events", "limits"]

ACTIVE_KEY = "lts:gen:active:{}"  # a sorted set per user: request id -> the time its slot lapses
_EXPIRE_MARGIN_S = 300  # streams outlive their request by this much, then Redis drops them


class LimitExceeded(Exception):
    """Too many generations in flight for this user (HTTP 429)."""


def _max_block_s(client: redis.Redis) -> float:
    """The longest XREAD block this client survives: half its socket timeout (none set: no limit; see
    generation_protocol._SOCKET_TIMEOUT_S)."""
    timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    return timeout / 2 if timeout else float("inf")


@functools.lru_cache(maxsize=16)
def _tokenizer(folder: str, mtime: float):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def check_request(model: ZooModel, prompt: Any, sampling: dict[str, Any]) -> SamplingSettings:
    """Every check that needs no worker, as the worker would make them: settings, the prompt's length in characters
    and tokens, the model's context, a tokenizer in the checkpoint. GenerationError (field -> message). Without an
    explicit max_new_tokens, the default is cut to what the context leaves."""
    caps = limits()
    checked = SamplingSettings.from_dict(sampling, caps)
    folder = model.folder
    config = folder / "tokenizer_config.json"
    if not config.exists() and not (folder / "tokenizer.json").exists():
        raise GenerationError({"model": f"{model.name} has no tokenizer files: import it with its tokenizer to "
                                        "generate from it"})
    try:
        tokenizer = _tokenizer(str(folder), config.stat().st_mtime if config.exists() else 0.0)
    except (OSError, ValueError, TypeError) as exc:
        raise GenerationError({"model": f"{model.name}'s tokenizer cannot be loaded: {exc}"}) from None
    context = int(model.config.get("max_sequence_length") or 0) or 2**31
    explicit = "max_new_tokens" in sampling
    ids = encode_prompt(tokenizer, prompt, caps, context, checked.max_new_tokens if explicit else 1)
    if not explicit and len(ids) + checked.max_new_tokens > context:
        checked = dataclasses.replace(checked, max_new_tokens=context - len(ids))
    return checked


def _acquire_slot(user_id: int, request_id: str) -> None:
    r = connection()
    key, now = ACTIVE_KEY.format(user_id), time.time()
    lapse = now + settings.LTS_GENERATE_QUEUE_WAIT_S + settings.LTS_GENERATE_TIME_LIMIT_S + 150  # as events() waits
    pipe = r.pipeline()
    pipe.zremrangebyscore(key, "-inf", now)  # slots of requests whose reader vanished without releasing them
    pipe.zadd(key, {request_id: lapse})
    pipe.zcard(key)
    pipe.expire(key, int(lapse - now) + 60)
    count = pipe.execute()[2]
    if count > settings.LTS_GENERATE_MAX_CONCURRENT:
        r.zrem(key, request_id)
        raise LimitExceeded(f"{settings.LTS_GENERATE_MAX_CONCURRENT} generations at once per user at most "
                            "(LTS_GENERATE_MAX_CONCURRENT): wait for one to finish")


def _release_slot(user_id: int, request_id: str) -> None:
    connection().zrem(ACTIVE_KEY.format(user_id), request_id)


@dataclass
class GenerationHandle:
    request_id: str
    model: ZooModel
    user_id: int
    started: float  # time.monotonic() when the request was accepted


def do_start_generation(*, user, model: ZooModel, prompt: str, sampling: dict[str, Any]) -> GenerationHandle:
    """Validate (GenerationError), take one of the user's slots (LimitExceeded) and queue the work on `generate`.
    The caller must read the events with :func:`events`, which gives the slot back."""
    checked = check_request(model, prompt, sampling)
    request_id = uuid.uuid4().hex
    _acquire_slot(user.pk, request_id)
    try:
        r = connection()
        key = STREAM_KEY.format(request_id)
        r.xadd(key, protocol.encode(protocol.QUEUED, {}))
        r.expire(key, int(settings.LTS_GENERATE_QUEUE_WAIT_S + settings.LTS_GENERATE_TIME_LIMIT_S) + _EXPIRE_MARGIN_S)
        # At most once: a generation that died with its worker is reported by the reader's timeout, never replayed
        # into a stream that already holds half of it. Dropped unstarted after the queue wait.
        queueing.send(queueing.GENERATE_TEXT, [request_id, model.pk, prompt, checked.to_dict()], on_commit=False,
                      expires=settings.LTS_GENERATE_QUEUE_WAIT_S, ignore_result=True)
    except Exception:
        _release_slot(user.pk, request_id)
        raise
    return GenerationHandle(request_id, model, user.pk, time.monotonic())


def events(handle: GenerationHandle, *, keepalive_s: float = 10.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) as the worker produces them, ending with ``done`` or ``error``; ``keepalive`` while nothing
    comes (for proxies that drop silent connections). Closing the iterator early (a client that went away) asks the
    worker to stop; the user's slot is given back either way."""
    r = connection()
    key, last = STREAM_KEY.format(handle.request_id), "0"
    wait_start = settings.LTS_GENERATE_QUEUE_WAIT_S
    max_block_s = _max_block_s(r)
    finished = False
    started_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if started_at is None and now - handle.started > wait_start:
                yield "error", {"detail": f"no generation worker started the request within {wait_start:g} s: is a "
                                          "worker consuming the `generate` queue?", "status": 503}
                finished = True
                return
            # The time limit starts after the model is loaded: two more minutes for loading before giving up.
            if started_at is not None and now - started_at > settings.LTS_GENERATE_TIME_LIMIT_S + 120:
                yield "error", {"detail": "the generation worker stopped answering (it may have died)", "status": 504}
                finished = True
                return
            # Before a worker accepts, wake every second to check the queue wait; a keep-alive follows every empty read.
            block_s = min(keepalive_s, max_block_s, 1.0 if started_at is None else keepalive_s)
            reply = r.xread({key: last}, block=max(int(1000 * block_s), 1), count=256)
            if not reply:
                yield "keepalive", {}
                continue
            for entry_id, fields in reply[0][1]:
                last = entry_id
                kind, data = protocol.decode(fields)
                if kind == protocol.QUEUED:
                    continue
                if kind == protocol.ACCEPTED:  # a worker took it (loading a model may follow, outside the queue wait)
                    started_at = time.monotonic()
                    continue
                if kind == protocol.START:
                    data["queued_s"] = round((started_at or time.monotonic()) - handle.started, 6)
                yield kind, data
                if kind in protocol.FINAL:
                    finished = True
                    return
    finally:
        if not finished:
            r.set(CANCEL_KEY.format(handle.request_id), "1", ex=int(settings.LTS_GENERATE_TIME_LIMIT_S) + 60)
        _release_slot(handle.user_id, handle.request_id)


def collect(handle: GenerationHandle) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Read a request to its end: (start + done data merged, None) or (None, error data)."""
    start: dict[str, Any] = {}
    for kind, data in events(handle):
        if kind == "start":
            start = data
        elif kind == "done":
            return {**start, **data}, None
        elif kind == "error":
            return None, data
    return None, {"detail": "the generation ended without a result", "status": 502}
