"""Test-session set-up that must happen before Django reads its settings.

Backends: DATABASE_URL / REDIS_URL when set (CI: the machine's PostgreSQL and Redis), else SQLite and an
embedded redis-server started here for the session. The header of every run says which were used.
"""
from __future__ import annotations

import atexit
import os
import tempfile

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LTS_VAR_DIR", tempfile.mkdtemp(prefix="lts-test-var-"))
os.environ.setdefault("LTS_DEVICE", "test-device")
# The suite starts work much faster than a person: per-user rates out of its way (tests of the limits override them).
os.environ.setdefault("LTS_RATE_START_WORK", "100000/min")
os.environ.setdefault("LTS_RATE_GENERATE", "100000/min")
os.environ.setdefault("LTS_RATE_PREDICT", "100000/min")
os.environ.setdefault("LTS_RATE_TOKEN", "100000/min")

_EMBEDDED = None
if not os.environ.get("REDIS_URL"):
    from workers.embedded_redis import EmbeddedRedis

    _EMBEDDED = EmbeddedRedis().start()
    os.environ["REDIS_URL"] = _EMBEDDED.url
    atexit.register(_EMBEDDED.stop)

# Settings are read only now that the environment is complete (pytest-django then finishes the set-up in
# its pytest_configure); DJANGO_SETTINGS_MODULE is therefore not in pytest.ini.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
from django.conf import settings as _settings  # noqa: E402 - only once the environment above is complete

_settings.DATABASES  # noqa: B018  (forces the settings to load)


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    database = f"{db['ENGINE'].rsplit('.', 1)[-1]} ({db.get('HOST') or db['NAME']})"
    broker = f"{'embedded redis-server' if _EMBEDDED else 'Redis'} at {os.environ['REDIS_URL']}"
    return [f"LTS backends: database {database}; broker {broker}"]


def pytest_collection_modifyitems(config, items):
    import pytest
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    skip_redis = pytest.mark.skip(reason="needs a real Redis: set REDIS_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis_only" in item.keywords and _EMBEDDED is not None:
            item.add_marker(skip_redis)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    needs = [r for r in skipped if "needs PostgreSQL" in str(r.longrepr) or "needs a real Redis" in str(r.longrepr)]
    if needs:
        terminalreporter.write_line(
            f"LTS: {len(needs)} test(s) skipped because PostgreSQL or a real Redis is absent (set DATABASE_URL / REDIS_URL)."
        )
