from __future__ import annotations

import pytest
from django.utils import timezone


@pytest.fixture
def no_messages(outbox):
    """Tasks are not sent: these tests drive the orchestration steps themselves."""
    return outbox


@pytest.fixture
def device(db):
    from searches.models import Device

    return Device.objects.create(name="edge-1", last_heartbeat=timezone.now(), backends=["torch"],
                                 hardware={"cpu_model": "Test CPU", "cpu_cores_logical": 2})
