"""One error style: a service's Conflict is a 409 with its message (and extras), a ConfigError a 400 with each
field's message, through REST_FRAMEWORK["EXCEPTION_HANDLER"]."""
from __future__ import annotations

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
