"""The pages a user watches carry "Notify me when it ends" with their work's API URL and status; the team's webhook
page is its members' only."""
from __future__ import annotations

import pytest

from tests.models_zoo.conftest import corpus, dataset, roots, sent  # noqa: F401  (fixtures)
from tests.models_zoo.proxy_checks.conftest import create  # noqa: F401  (fixtures)
from tests.searches.factories import spec

pytestmark = pytest.mark.django_db


def _button(html: str) -> str:
    start = html.index("<button type=\"button\" class=\"notify\"")
    return html[start:html.index("</button>", start)]


def test_search_training_run_and_proxy_check_pages_offer_the_notification(client, actors, create, no_send):
    from searches import services as search_services

    check = create(sample_size=3)
    run = check.members.first().run
    job = search_services.do_create_search(owner=actors.alice, team=actors.acme, name="edge",
                                           spec=spec(device=None, objectives=["proxy"]))
    client.force_login(actors.bob)
    for path, api, kind, name in ((f"/searches/{job.pk}/", f"/api/v1/searches/{job.pk}/", "Search", "edge"),
                                  (f"/zoo/runs/{run.pk}/", f"/api/v1/training-runs/{run.pk}/", "Training run",
                                   run.name),
                                  (f"/proxy-checks/{check.pk}/", f"/api/v1/proxy-checks/{check.pk}/", "Proxy check",
                                   check.name)):
        button = _button(client.get(path).content.decode())
        assert f'data-notify-api="{api}"' in button, path
        assert 'data-notify-status="' in button and f"{kind} &quot;{name}&quot;" in button
        assert client.get(api).status_code == 200  # what the button polls


def test_the_webhook_page_is_for_the_team_members(client, actors):
    client.force_login(actors.charlie)
    assert client.get(f"/teams/{actors.acme.pk}/webhooks/").status_code == 404
    assert client.post(f"/teams/{actors.acme.pk}/webhooks/", {"url": "https://example.com/"}).status_code == 404
    client.force_login(actors.bob)
    page = client.get("/teams/").content.decode()
    assert f'href="/teams/{actors.acme.pk}/webhooks/"' in page
    assert client.get(f"/teams/{actors.acme.pk}/webhooks/").status_code == 200


@pytest.fixture
def no_send(outbox):
    """Messages are recorded, not sent."""
    return outbox
