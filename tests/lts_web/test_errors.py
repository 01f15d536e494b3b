"""One error style: a service's Conflict is a 409 with its message (and extras), a ConfigError a 400 with each
field's message, through REST_FRAMEWORK["EXCEPTION_HANDLER"]."""
from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.exceptions import NotFound

from lts_web.errors import Conflict, exception_handler
from searches.core.arch import ConfigError


def test_the_handler_is_installed():
    assert settings.REST_FRAMEWORK["EXCEPTION_HANDLER"] == "lts_web.errors.exception_handler"


def test_conflict_is_409_with_its_message_and_extras():
    response = exception_handler(Conflict("cannot cancel a run that is completed", need=5), {})
    assert response.status_code == 409
    assert response.data == {"detail": "cannot cancel a run that is completed", "need": 5}


def test_config_error_is_400_with_field_messages():
    response = exception_handler(ConfigError({"config.seq_len": "too long", "tokenizer": "required"}), {})
    assert response.status_code == 400
    assert response.data == {"config.seq_len": ["too long"], "tokenizer": ["required"]}


def test_other_errors_keep_drf_answers():
    assert exception_handler(NotFound(), {}).status_code == 404
    assert exception_handler(ValueError("a bug"), {}) is None  # a 500, as before


def _is_field_errors(body) -> bool:
    """{field: [message, ...]}, a nested field a dict of the same (or a list of them, for a many=True field)."""
    if not isinstance(body, dict) or not body:
        return False
    return all(isinstance(v, list) and v and all(isinstance(m, str) or _is_field_errors(m) for m in v)
               or _is_field_errors(v) for v in body.values())


def test_a_validation_error_with_bare_strings_gets_lists_at_every_depth():
    from rest_framework.exceptions import ValidationError

    response = exception_handler(ValidationError({"device": "required", "space": {"n_head": "too many"},
                                                  "items": [{"name": "blank"}, {}], "name": ["blank"]}), {})
    assert response.status_code == 400
    assert response.data == {"device": ["required"], "space": {"n_head": ["too many"]},
                             "items": [{"name": ["blank"]}, {}], "name": ["blank"]}


@pytest.mark.django_db
@pytest.mark.parametrize("method, url, body", [
    # no device, where latency and memory are measured (the spec's check, the only error)
    ("post", "/api/v1/searches/", {"name": "x", "preset": "tiny"}),
    # a field of its own fails too: the spec's messages join it (they came as bare strings)
    ("post", "/api/v1/searches/", {"name": "x", "preset": "tiny", "objectives": []}),
    ("post", "/api/v1/searches/", {"name": "", "preset": "tiny", "device": "edge-1",
                                   "params": {"batch": 0}, "profiling": {"seq_len": 0}, "unknown": 1}),
    ("get", "/api/v1/searches/{job}/frontier/?objectives=nope", None),  # a view's own check
    ("post", "/api/v1/devices/edge-1/predict/", {"architectures": [{"n_layer": 1, "d_model": 64, "d_inner": 64,
                                                                    "n_head": 3}], "profiling": {"seq_len": 0}}),
    ("post", "/api/v1/training-runs/", {"name": "", "dataset": 999999, "tokenizer": "nope"}),
    ("post", "/api/v1/training-runs/", {"dataset": 999999, "architecture": {"n_layer": 0}}),
    ("post", "/api/v1/proxy-checks/", {"name": "", "dataset": 999999, "preset": "tiny", "sample_size": 1}),
    ("post", "/api/v1/webhooks/", {"team": 999999, "url": "not a url", "events": ["nope"]}),
    ("post", "/api/v1/spaces/preview/", {}),
    ("post", "/api/v1/datasets/", {"name": "", "kind": "folder"}),
    ("get", "/api/v1/candidates/?limit=0", None),
])
def test_every_400_of_the_api_gives_each_field_a_list_of_messages(api_client, actors, method, url, body):
    from searches import services
    from searches.models import Device
    from tests.searches.factories import spec

    Device.objects.create(name="edge-1", backends=["torch"])
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="s", spec=spec())
    api_client.force_authenticate(actors.alice)
    response = getattr(api_client, method)(url.format(job=job.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert _is_field_errors(response.json()), response.json()
