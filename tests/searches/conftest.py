from __future__ import annotations

import pytest
from django.utils import timezone


@pytest.fixture
def no_messages(monkeypatch):
    """Tasks are not sent: these tests drive the orchestration steps themselves."""
    from workers.tasks import advance_search, profile_measurement

    monkeypatch.setattr(advance_search, "delay", lambda *a, **k: None)
    monkeypatch.setattr(profile_measurement, "apply_async", lambda *a, **k: None)


@pytest.fixture
def device(db):
    from searches.models import Device

    return Device.objects.create(name="edge-1", last_heartbeat=timezone.now(), backends=["torch"],
                                 hardware={"cpu_model": "Test CPU", "cpu_cores_logical": 2})
