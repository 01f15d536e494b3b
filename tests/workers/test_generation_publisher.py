"""The generation worker's publisher: events reach the request's Redis stream in order, text produced while an append
is in flight or within the stream interval is merged into one event, the end is never held back."""
from __future__ import annotations

import json
import time
import uuid

from models_zoo import generation as gen
from workers.generation import _Publisher


def _read(request_id: str) -> list[tuple[str, dict]]:
    entries = gen.connection().xrange(gen.STREAM_KEY.format(request_id))
    return [(fields["event"], json.loads(fields["data"])) for _, fields in entries]


def test_text_is_merged_within_the_interval_and_nothing_is_lost(settings):
    settings.LTS_GENERATE_STREAM_INTERVAL_S = 0.3
    request_id = uuid.uuid4().hex
    started = time.monotonic()
    with _Publisher(request_id) as out:
        out.send("start", {"model": 1})
        for n in range(1, 21):
            out.send("text", {"text": f"t{n} ", "tokens": n})
            time.sleep(0.005)
        out.send("done", {"text": "whole"})
    elapsed = time.monotonic() - started
    events = _read(request_id)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"text"}
    texts = [data for kind, data in events if kind == "text"]
    assert "".join(d["text"] for d in texts) == "".join(f"t{n} " for n in range(1, 21))
    assert 2 <= len(texts) <= 3 and texts[-1]["tokens"] == 20  # 0.1 s of tokens: one or two intervals of 0.3 s
    assert elapsed < 0.6  # the end is sent at once, not after another interval


def test_without_an_interval_every_token_is_its_own_event_when_appends_keep_up(settings):
    settings.LTS_GENERATE_STREAM_INTERVAL_S = 0.0
    request_id = uuid.uuid4().hex
    with _Publisher(request_id) as out:
        for n in range(1, 6):
            out.send("text", {"text": "x", "tokens": n})
            time.sleep(0.05)  # far slower than an append to Redis
    assert [data["tokens"] for _, data in _read(request_id)] == [1, 2, 3, 4, 5]
