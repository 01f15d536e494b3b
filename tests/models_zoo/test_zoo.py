"""The zoo: importing a local checkpoint (archid and proxy from its config), confinement, the hub offline, download
as a streamed zip, deletion, measurements per device, permissions, query counts, lts_import."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command
from transformers import AutoModelForCausalLM

from models_zoo import services
from models_zoo.models import ZooModel
from searches.core.arch import Architecture
from searches.models import Device, Measurement
from tests.models_zoo.conftest import TINY_ARCH, make_checkpoint

pytestmark = pytest.mark.django_db

ARCH = Architecture.from_dict({**TINY_ARCH, "vocab_size": 300})


def _client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


@pytest.fixture
def checkpoint(roots):
    """A GPT-2 checkpoint folder under the data root, as a user would put a downloaded gallery subfolder there."""
    return make_checkpoint(roots[0] / "gallery" / "tiny")


@pytest.fixture
def imported(actors, checkpoint):
    return services.do_import_model(owner=actors.alice, team=actors.acme, source="gallery/tiny")


def test_import_a_local_checkpoint_computes_archid_and_proxy(api_client, actors, checkpoint, roots):
    response = _client(api_client, actors.bob).post("/api/v1/zoo-models/import/", {"path": "gallery/tiny",
                                                                                   "name": "tiny"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["archid"] == ARCH.archid and body["proxy"] == ARCH.non_embedding_params
    assert body["total_params"] == ARCH.total_params and body["source"] == "imported"
    assert body["config"] == ARCH.to_dict() and body["origin"] == "gallery/tiny" and body["val_ppl"] is None
    model = ZooModel.objects.get(pk=body["id"])
    assert model.folder == roots[1] / "zoo" / str(model.pk)
    assert {"config.json", "model.safetensors"} <= {p.name for p in model.folder.iterdir()}
    assert AutoModelForCausalLM.from_pretrained(model.folder).config.n_embd == 32


def test_a_gallery_folder_named_by_its_archid_keeps_that_archid(actors, roots):
    # GPT2Config writes attn_pdrop 0.1 by default; a folder named by the archid of that config keeps it.
    named = Architecture.from_dict({**TINY_ARCH, "vocab_size": 300, "dropatt": 0.1})
    make_checkpoint(roots[0] / named.archid, {"dropatt": 0.1})
    model = services.do_import_model(owner=actors.alice, team=actors.acme, source=named.archid)
    assert model.archid == named.archid and model.name == named.archid


@pytest.mark.parametrize("path, text", [
    ("../elsewhere", "'..' is not allowed"),
    ("/tmp", "outside the data root"),
    ("nowhere", "neither a checkpoint folder under the data root"),
    ("no-config", "has no config.json"),
    ("no-weights", "holds no weights"),
    ("bert", "only GPT-2 checkpoints"),
])
def test_import_refuses_what_is_not_a_gpt2_checkpoint_under_the_root(api_client, actors, roots, path, text):
    (roots[0] / "no-config").mkdir()
    (roots[0] / "no-weights").mkdir()
    (roots[0] / "no-weights" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 32,
                                                                     "n_head": 2, "vocab_size": 300, "n_positions": 64}))
    (roots[0] / "bert").mkdir()
    (roots[0] / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {"path": path}, format="json")
    assert response.status_code == 400
    assert text in " ".join(response.json()["path"]), response.json()
    assert not ZooModel.objects.exists()


def test_import_from_the_hub_offline_fails_at_once(api_client, actors, roots, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {
        "hub_id": "microsoft/lts-gpt2-sm/gpt2_a9e3147996070fda25af4b39ed95b6a18d6d0402"}, format="json")
    assert response.status_code == 400 and "offline" in response.json()["hub_id"][0]


def test_import_can_queue_profiling_on_a_device(api_client, actors, checkpoint, monkeypatch, outbox):
    from django.db import transaction

    sent = outbox
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    Device.objects.create(name="edge-1")
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {
        "path": "gallery/tiny", "profile_device": "edge-1"}, format="json")
    assert response.status_code == 201, response.json()
    m = Measurement.objects.get()
    assert m.archid == ARCH.archid and m.seq_len == 64 and m.device.name == "edge-1" and m.status == "pending"
    assert sent and sent[0]["queue"] == "profile.edge-1"
    response = _client(api_client, actors.alice).post("/api/v1/zoo-models/import/", {
        "path": "gallery/tiny", "profile_device": "nowhere"}, format="json")
    assert response.status_code == 400 and "unknown device" in response.json()["profile_device"][0]


def test_list_shows_measurements_per_device_in_bounded_queries(api_client, actors, imported, roots,
                                                               django_assert_num_queries):
    for name, latency in (("edge-1", 0.003), ("gpu-1", 0.0004)):
        device = Device.objects.create(name=name)
        Measurement.objects.create(archid=ARCH.archid, config=ARCH.to_dict(), device=device, backend="torch",
                                   batch_size=1, seq_len=64, threads=1, mode="prefill", dtype="float32",
                                   status="done", latency_median_s=latency, peak_memory_mb=12.0)
    make_checkpoint(roots[0] / "second", {"n_layer": 1})
    services.do_import_model(owner=actors.alice, team=actors.acme, source="second")
    client = _client(api_client, actors.bob)
    with django_assert_num_queries(3):  # count, page, every measurement of the page's archids
        body = client.get("/api/v1/zoo-models/").json()
    assert body["count"] == 2
    first = next(r for r in body["results"] if r["id"] == imported.pk)
    assert [(m["device"], m["latency_s"], m["memory_mb"]) for m in first["measurements"]] == [
        ("edge-1", 0.003, 12.0), ("gpu-1", 0.0004, 12.0)]
    detail = client.get(f"/api/v1/zoo-models/{imported.pk}/").json()
    assert len(detail["measurements"]) == 2


def test_download_streams_a_zip_of_the_checkpoint(api_client, actors, imported, tmp_path):
    response = _client(api_client, actors.bob).get(f"/api/v1/zoo-models/{imported.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response.streaming and 'filename="tiny.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    assert {"tiny/config.json", "tiny/model.safetensors"} <= set(archive.namelist())
    archive.extractall(tmp_path)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "tiny").config.n_layer == 2


def test_zoo_permissions_with_three_users(api_client, actors, imported):
    charlie = _client(api_client, actors.charlie)
    assert charlie.get("/api/v1/zoo-models/").json()["results"] == []
    for url in (f"/api/v1/zoo-models/{imported.pk}/", f"/api/v1/zoo-models/{imported.pk}/download/"):
        assert charlie.get(url).status_code == 404
    assert charlie.delete(f"/api/v1/zoo-models/{imported.pk}/").status_code == 404
    bob = _client(api_client, actors.bob)
    assert bob.get(f"/api/v1/zoo-models/{imported.pk}/").status_code == 200
    assert bob.delete(f"/api/v1/zoo-models/{imported.pk}/").status_code == 403
    assert _client(api_client, actors.alice).delete(f"/api/v1/zoo-models/{imported.pk}/").status_code == 204
    assert not ZooModel.objects.exists()


@pytest.mark.django_db(transaction=True)  # the folder is removed when the deletion commits
def test_deleting_a_model_removes_its_folder(actors, checkpoint):
    model = services.do_import_model(owner=actors.alice, team=actors.acme, source="gallery/tiny")
    folder = model.folder
    assert folder.is_dir()
    services.do_delete_model(model)
    assert not folder.exists()


def test_lts_import_takes_any_local_path_and_prints_archid_and_proxy(actors, roots, tmp_path):
    outside = make_checkpoint(tmp_path / "downloads" / "tiny")  # the operator's shell may read anywhere
    out = io.StringIO()
    call_command("lts_import", str(outside), "--user", "bob", "--name", "from-cli", stdout=out)
    text = out.getvalue()
    model = ZooModel.objects.get(name="from-cli")
    assert ARCH.archid in text and f"{ARCH.non_embedding_params:,}" in text
    assert model.team == actors.acme and model.owner == actors.bob and model.origin == str(outside)
    with pytest.raises(CommandError, match="neither a checkpoint folder"):
        call_command("lts_import", str(tmp_path / "missing"), "--user", "bob")
