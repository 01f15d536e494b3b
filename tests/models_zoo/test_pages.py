"""Zoo pages: team scoping on every page (owner, teammate, outsider 404), the forms, the chart data, lts_train --local."""
from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from models_zoo import services
from models_zoo.models import Dataset, TrainingRun, ZooModel
from searches.core.arch import Architecture
from searches.models import Device, Measurement
from tests.models_zoo.conftest import FAST_CONFIG, TINY_ARCH, make_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(actors, dataset, roots, sent):
    """A queued run and an imported model of team acme, owned by alice."""
    run = services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                     config=FAST_CONFIG, architecture=TINY_ARCH, name="run-a")
    make_checkpoint(roots[0] / "tiny")
    model = services.do_import_model(owner=actors.alice, team=actors.acme, source="tiny", name="model-a")
    return run, model


def _pages(run: TrainingRun, model: ZooModel) -> list[str]:
    return [f"/zoo/runs/{run.pk}/", f"/zoo/models/{model.pk}/", f"/zoo/models/{model.pk}/download/"]


def test_lists_and_details_are_scoped_to_the_team(client, actors, objects):
    run, model = objects
    for user, status in ((actors.alice, 200), (actors.bob, 200), (actors.charlie, 404)):
        client.force_login(user)
        for url in _pages(run, model):
            assert client.get(url).status_code == status, (user, url)
        lists = {url: client.get(url).content.decode() for url in ("/zoo/", "/zoo/runs/", "/zoo/datasets/")}
        seen = status == 200
        assert ("model-a" in lists["/zoo/"]) is seen and ("run-a" in lists["/zoo/runs/"]) is seen
        assert ("kings" in lists["/zoo/datasets/"]) is seen
        assert client.get("/zoo/train/").status_code == 200


def test_changes_need_the_owner_or_a_team_admin(client, actors, objects):
    run, model = objects
    dataset = run.dataset
    client.force_login(actors.charlie)
    for url in (f"/zoo/runs/{run.pk}/cancel/", f"/zoo/models/{model.pk}/delete/", f"/zoo/datasets/{dataset.pk}/delete/"):
        assert client.post(url).status_code == 404
    client.force_login(actors.bob)
    for url in (f"/zoo/runs/{run.pk}/cancel/", f"/zoo/models/{model.pk}/delete/", f"/zoo/datasets/{dataset.pk}/delete/"):
        assert client.post(url).status_code == 403
    client.force_login(actors.alice)
    assert client.post(f"/zoo/runs/{run.pk}/cancel/").status_code == 302
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"
    assert client.post(f"/zoo/models/{model.pk}/delete/").status_code == 302
    assert not ZooModel.objects.exists()
    assert client.post(f"/zoo/datasets/{dataset.pk}/delete/").status_code == 302
    assert not Dataset.objects.exists()


def test_pages_need_a_login(client, objects):
    run, model = objects
    for url in ["/zoo/", "/zoo/runs/", "/zoo/train/", "/zoo/datasets/", *_pages(run, model)]:
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/login/"), url


def test_zoo_list_chart_marks_the_trained_frontier(client, actors, objects, django_assert_max_num_queries):
    _, imported = objects
    device = Device.objects.create(name="edge-1")
    rows = []
    for name, ppl, latency in (("fast", 40.0, 0.001), ("good", 20.0, 0.004), ("dominated", 45.0, 0.005)):
        a = Architecture.from_dict({**TINY_ARCH, "n_layer": len(rows) + 1})
        rows.append(ZooModel.objects.create(team=actors.acme, owner=actors.alice, name=name, archid=a.archid,
                                            config=a.to_dict(), non_embedding_params=a.non_embedding_params,
                                            total_params=a.total_params, source="trained", val_ppl=ppl, path="zoo/x"))
        Measurement.objects.create(archid=a.archid, config=a.to_dict(), device=device, backend="torch", batch_size=1,
                                   seq_len=64, threads=1, mode="prefill", dtype="float32", status="done",
                                   latency_median_s=latency, peak_memory_mb=10.0 + ppl)
    client.force_login(actors.bob)
    with django_assert_max_num_queries(8):
        page = client.get("/zoo/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<script type="module" src="/static/plotly/plotly-lts.js">' in html and "edge-1 latency" in html
    assert 'id="chart-data"' in html
    chart = page.context["chart"]["edge-1"]
    names = {p["id"]: p["name"] for p in chart["points"]}
    assert sorted(names.values()) == ["dominated", "fast", "good"]  # the import has no perplexity: not plotted
    assert [names[i] for i in chart["frontier"]["latency_ms"]] == ["fast", "good"]
    assert [names[i] for i in chart["frontier"]["memory_mb"]] == ["good"]


def test_register_a_dataset_through_the_page(client, actors, roots):
    client.force_login(actors.bob)
    response = client.post("/zoo/datasets/", {"name": "up", "team": actors.acme.pk, "kind": "upload",
                                              "validation_fraction": 0.1,
                                              "file": SimpleUploadedFile("t.txt", b"The king sees.\n" * 100)})
    assert response.status_code == 302
    assert Dataset.objects.get(name="up").owner == actors.bob
    response = client.post("/zoo/datasets/", {"name": "esc", "team": actors.acme.pk, "kind": "folder",
                                              "path": "../etc", "validation_fraction": 0.1})
    assert response.status_code == 400 and "&#x27;..&#x27; is not allowed" in response.content.decode()
    response = client.post("/zoo/datasets/", {"name": "x", "team": actors.other.pk, "kind": "folder", "path": "a",
                                              "validation_fraction": 0.1})
    assert response.status_code == 400 and not Dataset.objects.filter(name="x").exists()  # not bob's team


def test_start_training_through_the_page(client, actors, dataset, sent):
    client.force_login(actors.bob)
    form = {"team": actors.acme.pk, "dataset": dataset.pk, "tokenizer": "bpe:400", "max_steps": 30, "seq_len": 32,
            "batch_size": 8, "grad_accum": 1, "lr": 0.003, "architecture": json.dumps(TINY_ARCH),
            "extra": json.dumps({"eval_interval": 10})}
    response = client.post("/zoo/train/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    run = TrainingRun.objects.get()
    assert response.url == f"/zoo/runs/{run.pk}/" and run.owner == actors.bob
    assert run.config["min_lr"] == pytest.approx(0.0003) and run.config["eval_interval"] == 10 and sent

    response = client.post("/zoo/train/", {**form, "seq_len": 128})
    assert response.status_code == 400 and "exceeds the architecture" in response.content.decode()
    response = client.post("/zoo/train/", {**form, "architecture": json.dumps({**TINY_ARCH, "n_head": 3})})
    assert response.status_code == 400 and "divisible" in response.content.decode()
    assert TrainingRun.objects.count() == 1


def test_numbers_beyond_the_limits_are_form_errors_and_cli_messages(client, actors, dataset, sent):
    """The issue: max_steps 1e20 was a 500 (integer out of range)."""
    client.force_login(actors.bob)
    form = {"team": actors.acme.pk, "dataset": dataset.pk, "tokenizer": "bpe:400", "max_steps": 10**20, "seq_len": 32,
            "batch_size": 10**12, "grad_accum": 1, "lr": 0.003, "architecture": json.dumps(TINY_ARCH), "extra": ""}
    response = client.post("/zoo/train/", form)
    assert response.status_code == 400
    html = response.content.decode()
    assert "less than or equal to 2147483647" in html and "less than or equal to 1048576" in html
    response = client.post("/zoo/train/", {**form, "max_steps": 30, "batch_size": 8,
                                           "extra": json.dumps({"eval_interval": 10**12, "seed": 2**64})})
    assert response.status_code == 400 and "must be at most 2,147,483,647" in response.content.decode()
    for args, says in ((("--max-steps", str(10**20)), "max_steps: must be at most 2,147,483,647"),
                       (("--max-tokens", str(10**30)), "max_tokens: must be at most 1,000,000,000,000,000"),
                       (("--candidate", str(10**30)), "--candidate: an id is from 1 to"),
                       (("--follow", "0"), "--follow: an id is from 1 to")):
        with pytest.raises(CommandError, match=says):
            call_command("lts_train", "--arch", json.dumps(TINY_ARCH), "--data", f"dataset:{dataset.pk}",
                         "--tokenizer", "bpe:400", "--user", "alice", "--no-wait", *args, stdout=io.StringIO())
    assert not TrainingRun.objects.exists() and not sent


def test_run_detail_has_the_live_progress_hooks(client, actors, objects):
    run, _ = objects
    client.force_login(actors.bob)
    html = client.get(f"/zoo/runs/{run.pk}/").content.decode()
    assert f"/api/v1/training-runs/{run.pk}/" in html and 'data-field="eta_s"' in html and "loss-chart" in html
    assert "Cancel" not in html  # bob is neither the owner nor a team admin
    client.force_login(actors.alice)
    assert "Cancel" in client.get(f"/zoo/runs/{run.pk}/").content.decode()


def test_run_settings_read_plainly_never_as_python_reprs(client, actors, dataset, sent):
    run = services.do_start_training(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:400",
                                     architecture=TINY_ARCH, name="plain",
                                     config={**FAST_CONFIG, "max_steps": 12000, "eval_interval": 0, "grad_clip": 0.0,
                                             "min_lr": 5.9999999999999995e-05, "lr": 6e-4})
    assert run.config["max_tokens"] is None and run.config["max_minutes"] is None  # stored as the core has them
    TrainingRun.objects.filter(pk=run.pk).update(step=3456, total_steps=12000)
    client.force_login(actors.bob)
    html = client.get(f"/zoo/runs/{run.pk}/").content.decode()
    settings = html[html.index("<dt>Settings</dt>"):]
    settings = settings[:settings.index("</dd>")]
    for key, shown in (("max_steps", "12,000"), ("max_tokens", "no limit"), ("max_minutes", "no limit"),
                       ("eval_interval", "off"), ("grad_clip", "off"), ("checkpoint_interval", "10"),
                       ("betas", "0.9, 0.95"), ("dropout", "0"), ("min_lr", "0.00006"), ("lr", "0.0006")):
        assert f"<code>{key}</code> {shown}" in settings, (key, settings)
    for repr_ in ("None", "True", "False", "[", "e-05", ".0 "):
        assert repr_ not in settings, (repr_, settings)
    assert '<span data-field="step">3,456</span> / <span data-field="total_steps">12,000</span>' in html


def test_lts_train_local_trains_in_process_with_a_progress_bar(actors, corpus, roots, one_thread, tmp_path):
    out = io.StringIO()
    call_command("lts_train", "--arch", json.dumps(TINY_ARCH), "--data", corpus, "--tokenizer", "bpe:400",
                 "--max-steps", "30", "--seq-len", "32", "--batch-size", "8", "--lr", "0.003",
                 "--config", json.dumps({"warmup_steps": 4, "eval_interval": 10, "eval_batches": 4}),
                 "--user", "alice", "--local", stdout=out)
    text = out.getvalue()
    run = TrainingRun.objects.get()
    assert run.status == "completed" and run.claimed_by.startswith("local:") and run.zoo_model is not None
    assert "step 30/30  [####################]" in text and f"zoo model #{run.zoo_model.pk}" in text
    assert run.dataset.kind == "folder" and run.dataset.path == corpus

    # A file outside the data root is copied in (workers read only under it); a bad tokenizer is a clear error.
    outside = tmp_path / "outside.txt"
    outside.write_text((roots[0] / corpus).read_text())
    with pytest.raises(CommandError, match="vocabulary size must be in"):
        call_command("lts_train", "--arch", json.dumps(TINY_ARCH), "--data", str(outside), "--tokenizer", "bpe:5",
                     "--max-steps", "5", "--user", "alice", "--local", stdout=io.StringIO())
    copied = Dataset.objects.get(kind="upload")
    assert (roots[0] / copied.path).read_text() == outside.read_text()
    assert TrainingRun.objects.count() == 1


@pytest.mark.parametrize("spec, says", [
    ("../no/such/corpus.txt", r"no such file or folder \(looked here, in .*, and under the data root"),
    ("notes.md", "no such file or folder"),
    # a bare name that is nothing local is tried on the hub, and the error says what else it was tried as
    ("kingz", r"it is no dataset of team acme \(kings\), no file or folder here or under the data root, and as a "
              r"Hugging Face dataset:\n  hub_name: this machine is offline"),
    ("dataset:\u00b2", "no dataset dataset:\u00b2 in team acme"),  # isdigit() but not int()
    ("dataset:9223372036854775808", "no dataset dataset:9223372036854775808 in team acme"),
])
def test_lts_train_says_what_a_data_spec_that_matches_nothing_was_tried_as(actors, dataset, monkeypatch, spec, says):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CommandError, match=says):
        call_command("lts_train", "--arch", json.dumps(TINY_ARCH), "--data", spec, "--tokenizer", "bpe:400",
                     "--user", "alice", "--local", stdout=io.StringIO())
    assert TrainingRun.objects.count() == 0 and Dataset.objects.count() == 1


def test_import_through_the_page(client, actors, roots):
    make_checkpoint(roots[0] / "gallery")
    client.force_login(actors.bob)
    response = client.post("/zoo/import/", {"source": "../etc", "team": actors.acme.pk})
    assert response.status_code == 400 and "is not allowed" in response.content.decode()
    response = client.post("/zoo/import/", {"source": "gallery", "name": "g", "team": actors.acme.pk})
    model = ZooModel.objects.get(name="g")
    assert response.status_code == 302 and response.url == f"/zoo/models/{model.pk}/" and model.owner == actors.bob


def test_a_get_of_the_import_address_is_the_zoo_page_not_a_blank_405(client, actors):
    """After a failed import the address bar shows /zoo/import/: reloading it (a GET) lands on the form."""
    client.force_login(actors.bob)
    response = client.get("/zoo/import/")
    assert response.status_code == 302 and response.url == "/zoo/"


def test_an_unknown_candidate_is_named_and_the_dataset_detour_keeps_the_candidate(client, actors, roots):
    client.force_login(actors.bob)
    html = client.get("/zoo/train/?candidate=99999").content.decode()
    assert "Candidate #99999 does not exist in your teams' searches" in html
    # no dataset yet: the link to register one comes back to this very page, candidates and all
    assert 'href="/zoo/datasets/?next=/zoo/train/%3Fcandidate%3D99999"' in html
    page = client.get("/zoo/datasets/?next=/zoo/train/%3Fcandidate%3D99999").content.decode()
    assert '<input type="hidden" name="next" value="/zoo/train/?candidate=99999">' in page
    response = client.post("/zoo/datasets/", {"name": "up", "team": actors.acme.pk, "kind": "upload",
                                              "validation_fraction": 0.1, "next": "/zoo/train/?candidate=99999",
                                              "file": SimpleUploadedFile("t.txt", b"The king sees.\n" * 100)})
    assert response.status_code == 302 and response.url == "/zoo/train/?candidate=99999"
    # another host is not a place to go back to
    response = client.post("/zoo/datasets/", {"name": "up2", "team": actors.acme.pk, "kind": "upload",
                                              "validation_fraction": 0.1, "next": "https://evil.example/",
                                              "file": SimpleUploadedFile("t.txt", b"The king sees.\n" * 100)})
    assert response.status_code == 302 and response.url == "/zoo/datasets/"


def test_the_playground_preselects_the_best_validation_perplexity(client, actors, roots):
    make_checkpoint(roots[0] / "tiny")
    good = services.do_import_model(owner=actors.alice, team=actors.acme, source="tiny", name="good")
    newest = services.do_import_model(owner=actors.alice, team=actors.acme, source="tiny", name="throwaway")
    ZooModel.objects.filter(pk=good.pk).update(val_ppl=40.0)
    ZooModel.objects.filter(pk=newest.pk).update(val_ppl=900.0)
    client.force_login(actors.bob)
    html = client.get("/zoo/playground/").content.decode()
    assert f'<option value="{good.pk}" selected>' in html and f'<option value="{newest.pk}">' in html
    html = client.get(f"/zoo/playground/?models={newest.pk}").content.decode()  # asked for: kept
    assert f'<option value="{newest.pk}" selected>' in html and f'<option value="{good.pk}">' in html


@pytest.mark.parametrize("status, config, step, total, error, reason, text", [
    ("completed", {"max_steps": 30, "max_tokens": None, "max_minutes": None}, 30, 30, "", "max_steps",
     "reached its step budget (30 steps)"),
    ("completed", {"max_steps": None, "max_tokens": 4096, "max_minutes": None}, 16, 16, "", "max_tokens",
     "reached its token budget (4,096 tokens)"),
    ("completed", {"max_steps": 1000, "max_tokens": None, "max_minutes": 0.5}, 12, 1000, "", "max_minutes",
     "reached its time budget (0.5 minutes)"),
    ("cancelled", {"max_steps": 30}, 3, 30, "", "cancelled", "cancelled by a user"),
    ("failed", {"max_steps": 30}, 0, 30, "DataError: boom", "failed", "failed: DataError: boom"),
    ("running", {"max_steps": 30}, 0, 30, "", None, None),
])
def test_a_run_says_why_it_stopped_on_its_page_and_in_the_api(client, actors, objects, status, config, step, total,
                                                             error, reason, text):
    run, _ = objects
    TrainingRun.objects.filter(pk=run.pk).update(status=status, config={**run.config, **config}, step=step,
                                                 total_steps=total, error=error, phase="loading and tokenizing the data")
    client.force_login(actors.bob)
    assert client.get(f"/api/v1/training-runs/{run.pk}/").json()["stop_reason"] == reason
    html = client.get(f"/zoo/runs/{run.pk}/").content.decode()
    if text is None:  # running, no step yet: what it is doing
        assert "Why it stopped" not in html and "loading and tokenizing the data…" in html
    else:
        assert "Why it stopped" in html and text in html


def test_the_worker_reports_its_phase_before_the_first_step(actors, objects):
    run, _ = objects
    assert services.try_claim_training(run.pk, "w1")
    assert services.do_set_training_phase(run.pk, "w1", "building the model")
    assert not services.do_set_training_phase(run.pk, "w2", "stolen")  # not its claim
    assert TrainingRun.objects.get(pk=run.pk).phase == "building the model"
