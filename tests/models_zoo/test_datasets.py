"""Datasets: registration through the API (folder, upload, hub), paths confined to LTS_DATA_ROOT, team permissions."""
from __future__ import annotations

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from models_zoo import services
from models_zoo.core import DataError
from models_zoo.models import Dataset

pytestmark = pytest.mark.django_db


def _client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_register_a_folder_dataset(api_client, actors, corpus):
    response = _client(api_client, actors.bob).post("/api/v1/datasets/", {"name": "kings", "kind": "folder",
                                                                          "path": corpus}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["path"] == corpus and body["owner"] == "bob" and body["team_name"] == "acme"
    assert body["size_bytes"] > 30_000 and body["validation_fraction"] == 0.1
    assert body["description"] == f"folder:{corpus}"


@pytest.mark.parametrize("path, text", [
    ("../outside.txt", "'..' is not allowed"),
    ("corpora/../../outside.txt", "'..' is not allowed"),
    ("/etc/passwd", "outside the data root"),
    ("escape/secret.txt", "through a symlink"),
    ("link.txt", "through a symlink"),
    ("missing.txt", "does not exist"),
    ("empty", "contains no .txt files"),
    ("binary.txt", "looks binary"),
    ("latin1.txt", "not UTF-8"),
    ("uploads/1", "where uploaded datasets are kept"),
    (".", "where uploaded datasets are kept"),
])
def test_folder_paths_are_confined_to_the_data_root(api_client, actors, roots, tmp_path, path, text):
    data, _ = roots
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret text\n")
    (tmp_path / "outside.txt").write_text("secret text\n")
    os.symlink(outside, data / "escape")
    os.symlink(outside / "secret.txt", data / "link.txt")
    (data / "empty").mkdir()
    (data / "binary.txt").write_bytes(b"abc\x00def" * 10)
    (data / "latin1.txt").write_bytes("café ".encode("latin-1") * 10 + b"x" * 100)
    (data / "uploads" / "1").mkdir(parents=True)
    (data / "uploads" / "1" / "someone-elses.txt").write_text("private text\n")
    response = _client(api_client, actors.alice).post("/api/v1/datasets/", {"name": "x", "kind": "folder",
                                                                            "path": path}, format="json")
    assert response.status_code == 400
    assert text in " ".join(response.json()["path"]), response.json()
    assert not Dataset.objects.exists()


def test_an_absolute_path_inside_the_root_is_stored_relative(actors, corpus, roots):
    dataset = services.do_register_dataset(owner=actors.alice, team=actors.acme, name="abs", kind="folder",
                                           path=str(roots[0] / corpus))
    assert dataset.path == corpus


def test_upload_is_stored_under_uploads_id_and_checked(api_client, actors, roots):
    client = _client(api_client, actors.alice)
    text = "The king sees the queen.\n" * 200
    response = client.post("/api/v1/datasets/", {"name": "up", "kind": "upload", "file": SimpleUploadedFile(
        "my corpus?.txt", text.encode())}, format="multipart")
    assert response.status_code == 201, response.json()
    dataset = Dataset.objects.get(pk=response.json()["id"])
    assert dataset.path == f"uploads/{dataset.pk}/my_corpus_.txt" and dataset.size_bytes == len(text)
    assert (roots[0] / dataset.path).read_text() == text

    response = client.post("/api/v1/datasets/", {"name": "bad", "kind": "upload", "file": SimpleUploadedFile(
        "b.txt", b"\xff\xfe not utf-8" * 10)}, format="multipart")
    assert response.status_code == 400 and "not UTF-8" in response.json()["path"][0]
    assert not Dataset.objects.filter(name="bad").exists()
    assert sorted(p.name for p in (roots[0] / "uploads").iterdir()) == [str(dataset.pk)]  # the bad file is gone

    response = client.post("/api/v1/datasets/", {"name": "nofile", "kind": "upload"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()


def test_upload_size_limit(api_client, actors, roots, settings):
    settings.LTS_MAX_UPLOAD_MB = 1
    response = _client(api_client, actors.alice).post("/api/v1/datasets/", {
        "name": "big", "kind": "upload", "file": SimpleUploadedFile("big.txt", b"a" * (2**20 + 1))},
        format="multipart")
    assert response.status_code == 400
    assert "over the upload limit of 1 MB" in response.json()["file"][0]


def test_hub_dataset_offline_fails_at_once_with_a_clear_message(api_client, actors, roots, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    response = _client(api_client, actors.alice).post("/api/v1/datasets/", {
        "name": "wiki", "kind": "hub", "hub_name": "wikitext", "hub_config": "wikitext-2-raw-v1"}, format="json")
    assert response.status_code == 400
    message = response.json()["hub_name"][0]
    assert "offline" in message and "HF_HUB_OFFLINE" in message


def test_hub_dataset_online_is_registered_without_downloading(api_client, actors, roots, monkeypatch):
    monkeypatch.setattr(services.datasets, "require_hub", lambda: None)  # as if online; nothing is fetched at registration
    response = _client(api_client, actors.alice).post("/api/v1/datasets/", {
        "name": "wiki", "kind": "hub", "hub_name": "wikitext", "hub_config": "wikitext-2-raw-v1",
        "hub_validation_split": "validation"}, format="json")
    assert response.status_code == 201, response.json()
    dataset = Dataset.objects.get(name="wiki")
    source = services.dataset_source(dataset)
    assert (source.name, source.config, source.split, source.text_field, source.validation_split) == (
        "wikitext", "wikitext-2-raw-v1", "train", "text", "validation")


def test_names_are_unique_per_team_and_validation_fraction_is_checked(api_client, actors, corpus):
    client = _client(api_client, actors.alice)
    assert client.post("/api/v1/datasets/", {"name": "k", "kind": "folder", "path": corpus}, format="json").status_code == 201
    response = client.post("/api/v1/datasets/", {"name": "k", "kind": "folder", "path": corpus}, format="json")
    assert response.status_code == 400 and "already has a dataset" in response.json()["name"][0]
    response = client.post("/api/v1/datasets/", {"name": "k2", "kind": "folder", "path": corpus,
                                                 "validation_fraction": 0}, format="json")
    assert response.status_code == 400 and "validation_fraction" in response.json()


def test_dataset_permissions_with_three_users(api_client, actors, dataset, django_assert_max_num_queries):
    charlie = _client(api_client, actors.charlie)
    assert charlie.get("/api/v1/datasets/").json()["results"] == []
    assert charlie.get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    assert charlie.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    response = charlie.post("/api/v1/datasets/", {"name": "x", "kind": "folder", "path": dataset.path,
                                                  "team": actors.acme.pk}, format="json")
    assert response.status_code == 400 and "not a member" in response.json()["team"][0]

    bob = _client(api_client, actors.bob)
    with django_assert_max_num_queries(4):
        assert [d["name"] for d in bob.get("/api/v1/datasets/").json()["results"]] == ["kings"]
    assert bob.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 403  # alice's
    alice = _client(api_client, actors.alice)
    assert alice.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.exists()


def test_a_dataset_in_use_by_an_active_run_cannot_be_deleted(api_client, actors, dataset, sent):
    from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH

    run = services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:300",
                                      config=FAST_CONFIG, architecture=TINY_ARCH)
    response = _client(api_client, actors.alice).delete(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == 409 and "cancel it first" in response.json()["detail"]
    services.do_cancel_training(run)
    assert api_client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    run.refresh_from_db()
    assert run.dataset is None and run.dataset_description == f"folder:{dataset.path}"


def test_copy_from_registers_a_local_file_as_an_upload(actors, roots, tmp_path):
    source = tmp_path / "elsewhere.txt"
    source.write_text("The quiet river keeps the sword.\n" * 50)
    dataset = services.do_register_dataset(owner=actors.alice, team=actors.acme, name="copied", kind="upload",
                                           copy_from=source)
    assert dataset.path == f"uploads/{dataset.pk}/elsewhere.txt"
    assert services.dataset_source(dataset).load().train[0] == source.read_text()
    with pytest.raises(DataError, match="a file is required"):
        services.do_register_dataset(owner=actors.alice, team=actors.acme, name="none", kind="upload")
