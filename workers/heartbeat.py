"""One heartbeat thread for every kind of liveness: a running measurement, a running training run, a device.

A daemon thread calls ``beat()`` every ``interval_s`` until stopped. A failing beat (a database blip) is logged and
the next one retries: three missed beats (LTS_DEVICE_OFFLINE_AFTER_S) are what let a reaper act, so one error must
not end the thread. The thread closes its own database connection when it ends (Django opens one per thread).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from django.db import connection

__all__ = ["Heartbeat"]

logger = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(beat, interval_s, name="..."):`` around work, or start()/stop() for a worker's lifetime."""

    def __init__(self, beat: Callable[[], object], interval_s: float, *, name: str):
        self.beat, self.interval_s, self.name = beat, interval_s, name
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while not self._done.wait(self.interval_s):
                try:
                    self.beat()
                except Exception:  # the next beat retries; three missed beats let the reaper act
                    logger.exception("%s failed", self.name)
        finally:
            connection.close()

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
