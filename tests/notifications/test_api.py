"""/api/v1/webhooks/ and /api/v1/webhooks/{id}/deliveries/: team rules as for searches (members see, the member who
added one or a team admin deletes it), every field checked at once, bounds, the address guard at registration."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import services
from notifications.core import EVENTS
from notifications.models import Delivery, Webhook

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhooks/"


def _post(client, user, body):
    client.force_authenticate(user)
    return client.post(URL, body, format="json")


def test_a_member_adds_a_webhook_and_its_secret_is_never_shown(api_client, actors, receiver, allow_private):
    response = _post(api_client, actors.bob, {"team": actors.acme.pk, "url": receiver.url, "secret": "x" * 20})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["events"] == list(EVENTS) and body["signed"] is True and body["owner"] == "bob"
    assert "secret" not in body and "x" * 20 not in response.content.decode()
    assert Webhook.objects.get(pk=body["id"]).secret == "x" * 20
    response = _post(api_client, actors.bob, {"team": actors.acme.pk, "url": receiver.url,
                                              "events": ["training.failed", "search.finished"]})
    assert response.json()["events"] == ["search.finished", "training.failed"] and response.json()["signed"] is False


def test_members_see_other_teams_get_404_and_owner_or_admin_delete(api_client, actors, receiver, allow_private):
    by_bob = services.do_create_webhook(owner=actors.bob, team_id=actors.acme.pk, url=receiver.url)
    by_alice = services.do_create_webhook(owner=actors.alice, team_id=actors.acme.pk, url=receiver.url)
    for user in (actors.alice, actors.bob):
        api_client.force_authenticate(user)
        assert [w["id"] for w in api_client.get(URL).json()["results"]] == [by_bob.pk, by_alice.pk]
        assert api_client.get(f"{URL}{by_bob.pk}/deliveries/").status_code == 200
    api_client.force_authenticate(actors.charlie)
    assert api_client.get(URL).json()["results"] == []
    for path in (f"{URL}{by_bob.pk}/", f"{URL}{by_bob.pk}/deliveries/"):
        assert api_client.get(path).status_code == 404
    assert api_client.delete(f"{URL}{by_bob.pk}/").status_code == 404
    api_client.force_authenticate(actors.bob)  # a member, not the one who added it
    response = api_client.delete(f"{URL}{by_alice.pk}/")
    assert response.status_code == 403 and "admin of its team" in response.json()["detail"]
    assert api_client.delete(f"{URL}{by_bob.pk}/").status_code == 204  # his own
    api_client.force_authenticate(actors.alice)  # the team's admin
    assert api_client.delete(f"{URL}{by_alice.pk}/").status_code == 204
    assert not Webhook.objects.exists()


def test_every_bad_field_is_reported_at_once(api_client, actors):
    response = _post(api_client, actors.bob, {"team": actors.other.pk, "url": "ftp://example.com/", "secret": "short",
                                              "events": ["search.finished", "search.exploded"]})
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"team", "url", "secret", "events"}
    assert "not a member" in errors["team"][0] and "http://" in errors["url"][0]
    assert "16 to 256" in errors["secret"][0] and "unknown event 'search.exploded'" in errors["events"][0]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("change, field, text", [
    ({"url": "http://127.0.0.1:9/hook"}, "url", "loopback address"),
    ({"url": "http://[::1]/hook"}, "url", "loopback address"),
    ({"url": "http://169.254.169.254/latest/"}, "url", "link-local address"),
    ({"url": "http://10.0.0.8/"}, "url", "private address"),
    ({"url": "http://[fd00::8]/"}, "url", "private address"),
    ({"url": "https://intranet.test/hook"}, "url", "intranet.test resolves to 192.168.0.10, which is a private"),
    ({"url": "https://v6-intranet.test/hook"}, "url", "v6-intranet.test resolves to fd00::10, which is a private"),
    ({"url": "https://nowhere.test/hook"}, "url", "does not resolve"),
    ({"url": "https://public.test/" + "x" * 2000}, "url", "at most 2000 characters"),
    ({"url": "https://user:pw@public.test/"}, "url", "no user name or password"),
    ({"url": 5}, "url", "must start with http:// or https://"),
    ({"secret": "s" * 257}, "secret", "16 to 256 characters"),
    ({"events": []}, "events", "give 1 to 5 events"),
    ({"events": list(EVENTS) + ["search.finished"]}, "events", "give 1 to 5 events"),
    ({"events": "search.finished"}, "events", "Expected a list"),
    ({"team": 2**63}, "team", "less than or equal to"),
    ({"color": "red"}, "color", "unknown field"),
])
def test_bad_input_is_a_400_with_the_field_message(api_client, actors, names, change, field, text):
    names.update({"intranet.test": ["192.168.0.10"], "v6-intranet.test": ["fd00::10"],
                  "public.test": ["93.184.216.34"]})
    body = {"team": actors.acme.pk, "url": "https://public.test/hook", **change}
    response = _post(api_client, actors.bob, body)
    assert response.status_code == 400, response.json()
    assert text in str(response.json()[field]), response.json()
    assert not Webhook.objects.exists()


def test_a_public_name_is_accepted_without_the_setting(api_client, actors, names):
    names["public.test"] = ["93.184.216.34", "2606:4700:4700::1111"]
    response = _post(api_client, actors.bob, {"team": actors.acme.pk, "url": "https://public.test/hook"})
    assert response.status_code == 201, response.json()


def test_a_team_has_at_most_the_configured_number_of_webhooks(api_client, actors, receiver, allow_private, settings):
    settings.LTS_WEBHOOKS_PER_TEAM = 2
    for _ in range(2):
        assert _post(api_client, actors.bob, {"team": actors.acme.pk, "url": receiver.url}).status_code == 201
    response = _post(api_client, actors.bob, {"team": actors.acme.pk, "url": receiver.url})
    assert response.status_code == 400 and "at most 2 webhooks" in response.json()["team"][0]


def test_lists_cost_a_fixed_number_of_queries(api_client, actors, receiver, allow_private):
    hooks = [services.do_create_webhook(owner=actors.bob, team_id=actors.acme.pk, url=receiver.url) for _ in range(3)]
    Delivery.objects.bulk_create([Delivery(webhook=hooks[0], event="search.finished", event_id=f"{i:032x}",
                                           payload={"text": "t"}) for i in range(1, 6)])
    api_client.force_authenticate(actors.bob)
    api_client.get(URL)  # the session's own queries
    for path, rows in ((URL, 3), (f"{URL}{hooks[0].pk}/deliveries/", 5)):
        with CaptureQueriesContext(connection) as queries:
            body = api_client.get(path).json()
        assert body["count"] == rows and len(body["results"]) == rows
        assert len(queries) <= 4, [q["sql"] for q in queries]  # user, count, page (+ the webhook): not one per row
