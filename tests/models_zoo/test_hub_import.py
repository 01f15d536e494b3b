"""Hub imports run on a worker: the request answers 202 with the import, the worker downloads (here: a local folder
stands in for the hub, nothing touches the network), the page and GET /api/v1/zoo-imports/<id>/ show where it
stands; a silent worker's import is re-queued, then failed; the shared queued-work mechanism (dispatch once)."""
from __future__ import annotations

from datetime import timedelta

import huggingface_hub
import pytest
from django.utils import timezone

from models_zoo import services
from models_zoo.models import ZooImport, ZooModel
from tests.models_zoo.conftest import make_checkpoint
from workers.training import execute_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def hub(roots, monkeypatch, tmp_path, outbox):
    """The hub as a local folder: "acme/tiny" is a GPT-2 checkpoint; the import's messages are recorded, not sent."""
    from django.db import transaction

    from lts_web import queueing

    make_checkpoint(tmp_path / "hub" / "acme" / "tiny")
    downloads: list[str] = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        downloads.append(repo_id)
        folder = tmp_path / "hub" / repo_id
        if not folder.is_dir():
            raise FileNotFoundError(f"404: {repo_id} is not on the hub")
        return str(folder)

    monkeypatch.setattr(services.zoo, "require_hub", lambda: None)  # as if online
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())

    class Hub:
        @property
        def sent(self) -> list[dict]:
            return [{"args": m["args"], "queue": m["queue"], "task_id": m["task_id"]}
                    for m in outbox.named(queueing.IMPORT_HUB_MODEL)]

    hub = Hub()
    hub.downloads = downloads
    return hub


def _client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_a_hub_import_is_queued_then_run_by_a_worker(api_client, actors, roots, hub):
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {"hub_id": "acme/tiny",
                                                                                     "name": "tiny"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["source"] == "hub:acme/tiny" and body["model"] is None
    assert hub.downloads == [] and not ZooModel.objects.exists()  # nothing downloaded in the request
    assert hub.sent == [{"args": [body["id"]], "queue": "train", "task_id": ZooImport.objects.get().task_id}]

    assert execute_import(body["id"], "w1") == "completed"
    assert execute_import(body["id"], "w2") == "already-claimed"  # a duplicate message does nothing
    status = api_client.get(f"/api/v1/zoo-imports/{body['id']}/").json()
    model = ZooModel.objects.get()
    assert status["status"] == "completed" and status["model"] == model.pk and status["attempts"] == 1
    assert model.origin == "hub:acme/tiny" and model.name == "tiny" and (model.folder / "config.json").is_file()
    assert [p.name for p in (roots[1] / "zoo").iterdir()] == [str(model.pk)]  # no staging folder left behind
    # Other teams do not see it.
    assert _client(api_client, actors.charlie).get(f"/api/v1/zoo-imports/{body['id']}/").status_code == 404


def test_a_hub_import_that_fails_says_why_on_the_page(client, actors, roots, hub):
    client.force_login(actors.alice)
    response = client.post("/zoo/import/", {"source": "hub:acme/missing", "team": actors.acme.pk, "name": ""})
    assert response.status_code == 302 and response.url == "/zoo/"
    row = ZooImport.objects.get()
    assert "Reload the page to follow them" in client.get("/zoo/").content.decode()
    assert execute_import(row.pk, "w1") == "failed"
    row.refresh_from_db()
    assert row.status == "failed" and "404: acme/missing is not on the hub" in row.error
    page = client.get("/zoo/").content.decode()
    assert "hub:acme/missing" in page and "is not on the hub" in page and not ZooModel.objects.exists()


def test_a_malformed_hub_id_is_refused_at_once(api_client, actors, roots, hub):
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {"hub_id": "no-slash"},
                                                      format="json")
    assert response.status_code == 400 and "not a hub id" in response.json()["hub_id"][0]
    assert not ZooImport.objects.exists()


def test_the_reaper_requeues_a_silent_import_then_fails_it(actors, roots, hub, settings):
    row = services.do_request_import(owner=actors.alice, team=actors.acme, source="hub:acme/tiny")
    assert ZooImport.objects.dispatch_once(row.pk) is None  # sent once already: a second sender loses
    for attempt in range(1, settings.LTS_TRAIN_MAX_ATTEMPTS + 1):
        assert services.try_claim_import(row.pk, f"w{attempt}")
        ZooImport.objects.filter(pk=row.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        counts = services.do_reap_imports()
        expected = "requeued" if attempt < settings.LTS_TRAIN_MAX_ATTEMPTS else "failed"
        assert counts[expected] == 1, counts
    row.refresh_from_db()
    assert row.status == "failed" and f"went silent {settings.LTS_TRAIN_MAX_ATTEMPTS} times" in row.error
    assert len(hub.sent) == settings.LTS_TRAIN_MAX_ATTEMPTS  # the first message, then one per re-queue
