"""Every page a browser test visits is saved as a screenshot under var/screenshots/ (ignored by git), for a person to
look at: <test>-<n>-<path>.png, taken after each Page.goto and Page.wait_for_url (a navigation by a click)."""
from __future__ import annotations

import re
from itertools import count

import pytest

from tests.conftest import ROOT

SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(autouse=True)
def screenshot_every_page(request, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    test = re.sub(r"[^\w.-]+", "_", request.node.name)[:80]
    numbers = count(1)
    for stale in SCREENSHOTS.glob(f"{test}-*.png"):
        stale.unlink()

    def shoot(page) -> None:
        path = re.sub(r"[^\w.-]+", "_", page.url.split("//", 1)[-1].split("/", 1)[-1]).strip("_") or "home"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{test}-{next(numbers):02d}-{path[:60]}.png"), full_page=True)
        except Exception:  # a page that navigates away meanwhile: no picture, never a failed test
            pass

    def wrap(name):
        original = getattr(sync_api.Page, name)

        def visit(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            shoot(self)
            return result

        monkeypatch.setattr(sync_api.Page, name, visit)

    wrap("goto")
    wrap("wait_for_url")
