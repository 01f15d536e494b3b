"""The one heartbeat thread: beats every interval, survives a failing beat, stops on exit."""
from __future__ import annotations

import threading

import pytest

from workers.heartbeat import Heartbeat


@pytest.mark.django_db
def test_heartbeat_beats_survives_an_error_and_stops(caplog):
    beats: list[int] = []
    third = threading.Event()

    def beat() -> None:
        beats.append(len(beats))
        if len(beats) == 1:
            raise RuntimeError("database blip")
        if len(beats) >= 3:
            third.set()

    with Heartbeat(beat, 0.01, name="heartbeat of test") as heartbeat:
        assert third.wait(5), "the heartbeat stopped after its first (failing) beat"
    count = len(beats)
    assert not heartbeat._thread.is_alive()
    third.clear()
    assert not third.wait(0.05) and len(beats) == count  # no beat after the block
    assert "heartbeat of test failed" in caplog.text and "database blip" in caplog.text
