"""Generation through the REST API on a real `generate` worker: greedy output is exactly transformers' generate for
the same checkpoint and prompt, seeded sampling repeats, the stream carries the same text as the whole completion;
bad input and limits are answered with 400/404/429 before any work is queued."""
from __future__ import annotations

import json
import threading
import time

import pytest
import redis
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models_zoo import generation, services
from tests.models_zoo.core.test_generation import write_checkpoint

pytestmark = [pytest.mark.django_db(transaction=True)]

PROMPT = "The old king sees"


@pytest.fixture
def zoo_model(actors, roots, corpus):
    data, _ = roots
    write_checkpoint(data / "ckpt", (data / corpus).read_text())
    return services.do_import_model(owner=actors.alice, team=actors.acme, source="ckpt", name="tiny")


@pytest.fixture
def generator(start_worker, roots):
    data, artifacts = roots
    return start_worker(["generate"], env={"LTS_DATA_ROOT": str(data), "LTS_ARTIFACT_ROOT": str(artifacts),
                                           "OMP_NUM_THREADS": "1", "LTS_GENERATE_THREADS": "1"})


def _url(model, stream: bool = False) -> str:
    return f"/api/v1/models/{model.pk}/generate" + ("/stream" if stream else "")


def _events(response) -> list[tuple[str, dict]]:
    assert response["Content-Type"].startswith("text/event-stream")
    events = []
    for block in b"".join(response.streaming_content).decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def _direct(model, **kwargs) -> list[int]:
    hf, tokenizer = AutoModelForCausalLM.from_pretrained(model.folder).eval(), AutoTokenizer.from_pretrained(model.folder)
    ids = tokenizer(PROMPT, return_tensors="pt")
    out = hf.generate(**ids, pad_token_id=tokenizer.eos_token_id, **kwargs)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_greedy_is_transformers_generate_and_the_stream_carries_the_same_text(generator, api_client, actors, zoo_model):
    api_client.force_authenticate(actors.bob)  # a teammate may generate from alice's model
    body = {"prompt": PROMPT, "greedy": True, "max_new_tokens": 30}
    response = api_client.post(_url(zoo_model), body, format="json")
    assert response.status_code == 200, (response.data, generator.output()[-3000:])
    result = response.data
    assert result["token_ids"] == _direct(zoo_model, max_new_tokens=30, do_sample=False)
    assert result["model"] == zoo_model.pk and result["prompt_tokens"] > 0 and result["queued_s"] >= 0
    assert result["stopped_by"] in ("max_new_tokens", "eos") and result["loaded_from_cache"] in (True, False)

    events = _events(api_client.post(_url(zoo_model, stream=True), body, format="json"))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"text"}
    assert events[0][1]["loaded_from_cache"] is True  # the worker kept the model from the first request
    streamed = "".join(data["text"] for kind, data in events if kind == "text")
    assert streamed == events[-1][1]["text"] == result["text"]
    assert events[-1][1]["token_ids"] == result["token_ids"]


def test_seeded_sampling_repeats_through_the_api(generator, api_client, actors, zoo_model):
    api_client.force_authenticate(actors.alice)
    body = {"prompt": PROMPT, "max_new_tokens": 20, "temperature": 1.2, "top_k": 0, "top_p": 0.9, "seed": 11}
    first = api_client.post(_url(zoo_model), body, format="json")
    second = api_client.post(_url(zoo_model), body, format="json")
    assert first.status_code == second.status_code == 200, (first.data, generator.output()[-3000:])
    assert first.data["token_ids"] == second.data["token_ids"]
    torch.manual_seed(11)
    assert first.data["token_ids"] == _direct(zoo_model, max_new_tokens=20, do_sample=True, temperature=1.2,
                                              top_k=0, top_p=0.9)
    other = api_client.post(_url(zoo_model), {**body, "seed": 12}, format="json")
    assert other.data["token_ids"] != first.data["token_ids"]


@pytest.mark.parametrize("body, field", [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompt": "x", "max_new_tokens": 100_000}, "max_new_tokens"),
    ({"prompt": "x", "max_new_tokens": "many"}, "max_new_tokens"),
    ({"prompt": "x", "temperature": -1}, "temperature"),
    ({"prompt": "x", "top_p": 3}, "top_p"),
    ({"prompt": "x", "top_k": -5}, "top_k"),
    ({"prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
    ({"prompt": "x", "greedy": "perhaps"}, "greedy"),
    ({"prompt": "x", "seed": -3}, "seed"),
    ({"prompt": PROMPT, "max_new_tokens": 62}, "max_new_tokens"),  # beyond the model's 64 positions
    ({"prompt": "x", "max_tokens": 5}, "max_tokens"),  # misspelt: not ignored
])
@pytest.mark.parametrize("stream", [False, True])
def test_bad_input_is_a_400_with_field_messages(api_client, actors, zoo_model, body, field, stream):
    api_client.force_authenticate(actors.alice)
    response = api_client.post(_url(zoo_model, stream), body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.content


def test_prompt_limits_come_from_settings(api_client, actors, zoo_model, settings):
    api_client.force_authenticate(actors.alice)
    settings.LTS_GENERATE_MAX_PROMPT_CHARS = 10
    response = api_client.post(_url(zoo_model), {"prompt": "x" * 11}, format="json")
    assert response.status_code == 400 and "LTS_GENERATE_MAX_PROMPT_CHARS" in response.json()["prompt"][0]
    settings.LTS_GENERATE_MAX_PROMPT_CHARS = 4000
    settings.LTS_GENERATE_MAX_PROMPT_TOKENS = 2
    response = api_client.post(_url(zoo_model), {"prompt": PROMPT}, format="json")
    assert response.status_code == 400 and "LTS_GENERATE_MAX_PROMPT_TOKENS" in response.json()["prompt"][0]


def test_models_of_other_teams_and_without_a_tokenizer(api_client, actors, zoo_model):
    api_client.force_authenticate(actors.charlie)
    assert api_client.post(_url(zoo_model), {"prompt": "x"}, format="json").status_code == 404
    api_client.force_authenticate(None)
    assert api_client.post(_url(zoo_model), {"prompt": "x"}, format="json").status_code in (401, 403)
    api_client.force_authenticate(actors.alice)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (zoo_model.folder / name).unlink(missing_ok=True)
    response = api_client.post(_url(zoo_model), {"prompt": "x"}, format="json")
    assert response.status_code == 400 and "tokenizer" in response.json()["model"][0]


def test_concurrent_generations_per_user_are_limited(api_client, actors, zoo_model, settings):
    settings.LTS_GENERATE_MAX_CONCURRENT = 1
    held = generation.do_start_generation(user=actors.alice, model=zoo_model, prompt="x", sampling={})
    api_client.force_authenticate(actors.alice)
    response = api_client.post(_url(zoo_model, stream=True), {"prompt": "x"}, format="json")
    assert response.status_code == 429 and "LTS_GENERATE_MAX_CONCURRENT" in response.json()["detail"]
    api_client.force_authenticate(actors.bob)  # another user has slots of their own
    other = generation.do_start_generation(user=actors.bob, model=zoo_model, prompt="x", sampling={})
    for handle in (held, other):  # closing a reader gives its slot back and asks the worker to stop
        reader = generation.events(handle)
        next(reader)
        reader.close()
        assert generation.connection().exists(generation.CANCEL_KEY.format(handle.request_id))
    api_client.force_authenticate(actors.alice)
    settings.LTS_GENERATE_QUEUE_WAIT_S = 1.0
    response = api_client.post(_url(zoo_model), {"prompt": "x"}, format="json")  # a slot again; no worker runs
    assert response.status_code == 503 and "`generate` queue" in response.json()["detail"]


def test_a_worker_slower_than_the_redis_socket_timeout_still_streams(api_client, actors, zoo_model, settings,
                                                                     monkeypatch):
    """The reader's XREAD once blocked longer than its client's socket timeout, so a worker that answered late
    (a model loading on a busy machine) turned the stream into a 500. A 0.3 s socket timeout here stands for 5 s; the
    stand-in worker's first event and its model load each take 0.6 s, past it."""
    from lts_web import queueing

    plain_url = settings.REDIS_URL
    settings.REDIS_URL = f"{plain_url}?socket_timeout=0.3"

    def slow_worker(name, args, **kwargs):
        def run():
            r = redis.Redis.from_url(plain_url, decode_responses=True)
            key = generation.STREAM_KEY.format(args[0])
            for delay, event, data in ((0.6, "accepted", {}), (0.6, "start", {"model": zoo_model.pk}),
                                       (0.0, "text", {"text": "Hello", "tokens": 1}),
                                       (0.0, "text", {"text": " world", "tokens": 2}),
                                       (0.0, "done", {"text": "Hello world", "token_ids": [1, 2]})):
                time.sleep(delay)
                r.xadd(key, {"event": event, "data": json.dumps(data)})

        threading.Thread(target=run, daemon=True).start()

    monkeypatch.setattr(queueing, "publish", slow_worker)
    api_client.force_authenticate(actors.alice)
    response = api_client.post(_url(zoo_model, stream=True), {"prompt": PROMPT}, format="json")
    assert response.status_code == 200
    events = _events(response)
    assert [kind for kind, _ in events] == ["start", "text", "text", "done"]
    assert "".join(data["text"] for kind, data in events if kind == "text") == "Hello world"
