"""What the web side (models_zoo/generation.py) and the generation worker (workers/generation.py) agree on: the Redis
keys of a request, the events of its stream, how an event is stored, and the limits both check.

One stream per request (``lts:gen:<id>``), appended by the worker and read by the web process, event by event:
``queued`` (written by the web side when it sends the work), ``accepted`` (a worker took it: the queue wait ends),
``start`` (the model is loaded), ``text`` (each piece of new text: {"text", "tokens"}), then ``done`` or ``error``.
A reader that goes away sets the request's cancel key; the worker stops at its next look.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import redis
from django.conf import settings

from models_zoo.core.generation import GenerationLimits

__all__ = [
    "ACCEPTED",
    "CANCEL_KEY",
    "DONE",
    "ERROR",
    "FINAL",
    "QUEUED",
    "START",
    "STREAM_KEY",
    "TEXT",
    "connection",
    "decode",
    "encode",
    "limits",
]

STREAM_KEY = "lts:gen:{}"
CANCEL_KEY = "lts:gen:{}:cancel"

QUEUED = "queued"
ACCEPTED = "accepted"
START = "start"
TEXT = "text"
DONE = "done"
ERROR = "error"
FINAL = (DONE, ERROR)  # the last event of every stream

# A Redis that stops answering must not hold a web thread forever: 5 s per command (REDIS_URL's own
# ?socket_timeout=... wins). A blocking XREAD therefore blocks for at most half the client's socket timeout (2.5 s),
# or its reply would come after the client gave up on the socket: a 500 for every worker slower than 5 s to answer.
_SOCKET_TIMEOUT_S = 5.0


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                socket_timeout=_SOCKET_TIMEOUT_S, socket_connect_timeout=_SOCKET_TIMEOUT_S)


def connection() -> redis.Redis:
    """The Redis client of streams and cancel keys (REDIS_URL), one per process."""
    return _redis(settings.REDIS_URL)


def limits() -> GenerationLimits:
    """The server's caps (LTS_GENERATE_*): checked by the web side before sending, and by the worker again."""
    return GenerationLimits(max_new_tokens=settings.LTS_GENERATE_MAX_NEW_TOKENS,
                            max_prompt_chars=settings.LTS_GENERATE_MAX_PROMPT_CHARS,
                            max_prompt_tokens=settings.LTS_GENERATE_MAX_PROMPT_TOKENS,
                            time_limit_s=settings.LTS_GENERATE_TIME_LIMIT_S)


def encode(event: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The fields of one stream entry."""
    return {"event": event, "data": json.dumps(data)}


def decode(fields: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(event, data) of one stream entry."""
    return fields["event"], json.loads(fields["data"])
