"""What the README tells a reader to look for is where the project puts it."""
from __future__ import annotations

import re
from pathlib import Path

from tests.browser.conftest import SCREENSHOTS

ROOT = Path(__file__).resolve().parent.parent


def test_the_browser_tests_screenshots_are_in_the_one_folder_the_readme_names():
    readme = (ROOT / "README.md").read_text()
    # every folder the README names in a sentence about screenshots, e.g. "save screenshots in `x/`"
    named = {folder for sentence in re.split(r"(?<=[.;])\s", readme) if "screenshot" in sentence
             for folder in re.findall(r"`([\w./-]+/)`", sentence)}
    assert named == {f"{SCREENSHOTS.relative_to(ROOT)}/"}, named
    # and no browser test saves its pictures anywhere else
    for module in (ROOT / "tests" / "browser").glob("*.py"):
        assert "test-artifacts" not in module.read_text(), module.name
