"""/favicon.ico answers (pages that link no icon, the browsable API and the admin, had the browser's request for it
end in a 404 in their console), to anyone, and the pages link it."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_icon_is_served_to_anyone_and_kept_a_day(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg ") and b"</svg>" in response.content
    assert "max-age=86400" in response["Cache-Control"]


def test_the_pages_link_the_icon(client, actors):
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in client.get("/login/").content.decode()
