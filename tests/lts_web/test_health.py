from __future__ import annotations

import socket

import pytest
from django.db import OperationalError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_healthz_ok_with_real_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_healthz_503_names_the_broker_when_it_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.LTS_HEALTH_TIMEOUT_S = 0.5
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("failed: ConnectionError")


@pytest.mark.django_db
def test_healthz_503_names_the_database_when_it_is_down(client, monkeypatch):
    from django.db.backends.base.base import BaseDatabaseWrapper

    def refuse(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "failed: OperationalError: connection refused", "broker": "ok"}
    assert body["status"] == "unavailable"


def test_healthz_needs_no_login_and_no_database_session(client, monkeypatch):
    from lts_web import views

    monkeypatch.setattr(views, "check_database", lambda: None)
    monkeypatch.setattr(views, "check_broker", lambda: None)
    assert client.get("/healthz").status_code == 200
