"""REST API of searches: validation, team permissions, filters, the live cursor, frontier, exports, query counts."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command

from searches import services
from searches.models import SearchJob
from tests.searches.factories import FAST_PROFILING, SMALL_SPACE, run_job, spec

pytestmark = pytest.mark.django_db

BODY = {"name": "first", "space": SMALL_SPACE, "device": "edge-1", "profiling": FAST_PROFILING,
        "budget": {"generations": 2}, "params": {"init_population": 6}}


@pytest.fixture
def finished_job(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="done", spec=spec())
    run_job(job)
    return job


def _client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_create_search_queues_its_first_step(api_client, actors, device, outbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(api_client, actors.bob).post("/api/v1/searches/", BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["owner"] == "bob" and body["team_name"] == "acme"
    assert body["spec"]["budget"]["generations"] == 2 and body["spec"]["params"]["num_crossovers"] == 5
    assert body["device"] == "edge-1"
    job = SearchJob.objects.get(pk=body["id"])
    assert job.rng_state is not None
    assert outbox == [{"name": "workers.tasks.advance_search", "args": [job.pk]}]  # once the creation committed


def test_numbers_beyond_the_limits_get_400_with_every_field_at_once(api_client, actors, device):
    """The issue: threads 1000000 was accepted and forked a storm; batch_size 10**12 overflowed a column; d_model 3e9
    and n_layer 10**12 were accepted."""
    body = {**BODY, "space": {**SMALL_SPACE, "d_model": [64, 3_000_000_000], "n_layer": [1, 10**12]},
            "profiling": {**FAST_PROFILING, "threads": 1_000_000, "batch_size": 10**12, "max_seconds": 1e300},
            "params": {"init_population": 10**9}, "budget": {"generations": 10**15, "max_candidates": 1e30},
            "seed": 2**64, "constraints": {"max_memory": 1e300}}
    response = _client(api_client, actors.alice).post("/api/v1/searches/", body, format="json")
    assert response.status_code == 400
    errors = {k: " ".join(v) if isinstance(v, list) else v for k, v in response.json().items()}
    assert "at most 1,024" in errors["profiling.threads"]
    assert "at most 1,048,576" in errors["profiling.batch_size"]
    assert "at most 3600 seconds" in errors["profiling.max_seconds"]
    assert "at most 32,768" in errors["space.d_model"] and "at most 256" in errors["space.n_layer"]
    assert "at most 10,000" in errors["params.init_population"] and "at most 10,000" in errors["budget.generations"]
    assert "at most 100,000,000" in errors["budget.max_candidates"]
    assert "at most 4,294,967,295" in errors["seed"] and "at most 1e+09" in errors["constraints.max_memory"]
    assert SearchJob.objects.count() == 0


def test_the_largest_space_within_the_limits_is_accepted_without_enumerating_it(api_client, actors, device):
    # It hung a web worker until gunicorn killed it, growing ~300 MB/s (the spec check iterated the space).
    from tests.searches.core.test_space import _LARGEST

    body = {"name": "huge", "device": device.name, "budget": {"generations": 1}, "space": _LARGEST,
            "profiling": {"seq_len": 32}}
    response = _client(api_client, actors.bob).post("/api/v1/searches/", body, format="json")
    assert response.status_code == 201, response.content


def test_threads_beyond_the_registered_devices_cores_are_refused(api_client, actors, device):
    client = _client(api_client, actors.alice)
    response = client.post("/api/v1/searches/", {**BODY, "profiling": {**FAST_PROFILING, "threads": 3}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"profiling.threads": ["at most 2 (the cores of device 'edge-1')"]}
    assert SearchJob.objects.count() == 0
    ok = client.post("/api/v1/searches/", {**BODY, "profiling": {**FAST_PROFILING, "threads": 2}}, format="json")
    assert ok.status_code == 201, ok.json()


def test_the_largest_architecture_must_fit_the_registered_devices_memory(api_client, actors, device, settings):
    device.hardware = {**device.hardware, "ram_mb": 64}
    device.save()
    body = {**BODY, "profiling": {**FAST_PROFILING, "batch_size": 1024}}  # 32,768 tokens x 256 logits: >= 92 MB
    response = _client(api_client, actors.alice).post("/api/v1/searches/", body, format="json")
    assert response.status_code == 400
    assert "more than the 64 MB of memory of device 'edge-1'" in response.json()["profiling.batch_size"][0]
    settings.LTS_PROFILE_MAX_SECONDS = 1
    response = _client(api_client, actors.alice).post("/api/v1/searches/", BODY, format="json")
    assert response.status_code == 201, response.json()
    response = _client(api_client, actors.alice).post(
        "/api/v1/searches/", {**BODY, "profiling": {**FAST_PROFILING, "max_seconds": 2}}, format="json")
    assert response.json() == {"profiling.max_seconds": [
        "at most 1 seconds (this server's limit, LTS_PROFILE_MAX_SECONDS)"]}


@pytest.mark.parametrize("change, field, text", [
    ({"preset": "huge"}, "preset", "unknown preset"),
    ({"device": "nowhere"}, "device", "unknown device 'nowhere'"),
    ({"device": None}, "device", "a device is required"),
    ({"profiling": {"seq_len": 4096}}, "profiling.seq_len", "exceeds the architecture's max_sequence_length"),
    ({"profiling": {"backend": "tensorflow"}}, "profiling.backend", "must be one of"),
    ({"params": {"init_population": 0}}, "params.init_population", ">= 1"),
    ({"objectives": ["speed"]}, "objectives", "choose 1 to 3"),
    ({"budget": {"generations": 0}}, "budget.generations", ">= 1"),
    ({"space": {**SMALL_SPACE, "n_head": [5]}}, "space.n_head", "divisible"),
    ({"constraints": {"max_latency": -1}}, "constraints.max_latency", "non-negative"),
    ({"name": ""}, "name", "may not be blank"),
    ({"team": 999999}, "team", "not a member"),
    ({"surprise": 1}, "surprise", "unknown field"),
    ({"objectives": [["proxy"]]}, "objectives", "choose 1 to 3"),
    ({"constraints": [1]}, "constraints", "must be a JSON object"),
])
def test_invalid_specs_get_400_with_field_messages(api_client, actors, device, change, field, text):
    body = {**BODY, **change}
    if "preset" in change:
        body.pop("space")
    response = _client(api_client, actors.alice).post("/api/v1/searches/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert text in " ".join(errors[field]), errors
    assert SearchJob.objects.count() == 0


def test_every_field_error_comes_in_one_response(api_client, actors, device):
    """A blank name used to hide the spec's errors until it was filled (DRF skips validate() after a field error)."""
    body = {**BODY, "name": "", "params": {"init_population": 0}, "budget": {"generations": 0},
            "device": "nowhere", "surprise": 1}
    response = _client(api_client, actors.alice).post("/api/v1/searches/", body, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert {"name", "params.init_population", "budget.generations", "surprise"} <= set(errors), errors
    # a team the user is not in and an unknown device, both at once
    errors = _client(api_client, actors.alice).post("/api/v1/searches/", {**BODY, "team": 999999, "device": "nowhere"},
                                                    format="json").json()
    assert {"team", "device"} <= set(errors), errors
    assert SearchJob.objects.count() == 0


def test_malformed_json_is_a_400_not_a_500(api_client, actors):
    response = _client(api_client, actors.alice).post("/api/v1/searches/", "{oops", content_type="application/json")
    assert response.status_code == 400


def test_team_permissions_owner_teammate_outsider(api_client, actors, finished_job, no_messages):
    job = finished_job  # alice's, in team acme; bob is a member of acme; charlie is not
    url = f"/api/v1/searches/{job.pk}/"
    outsider = _client(api_client, actors.charlie)
    assert outsider.get(url).status_code == 404
    assert outsider.get("/api/v1/searches/").json()["count"] == 0
    assert outsider.get(f"/api/v1/candidates/?job={job.pk}").json()["count"] == 0
    assert outsider.post(url + "clone/", {}, format="json").status_code == 404

    teammate = _client(api_client, actors.bob)
    assert teammate.get(url).status_code == 200
    assert teammate.get(f"/api/v1/candidates/?job={job.pk}").json()["count"] == job.candidates.count()
    for verb in ("cancel", "pause", "resume", "retry"):
        response = teammate.post(url + f"{verb}/")
        assert response.status_code == 403, verb
        assert "owner of this search or an admin" in response.json()["detail"]
    assert teammate.delete(url).status_code == 403
    clone = teammate.post(url + "clone/", {"name": "bob's copy"}, format="json")
    assert clone.status_code == 201 and clone.json()["owner"] == "bob" and clone.json()["spec"] == job.spec

    # alice is admin of acme: she may change bob's clone; bob may change his own.
    clone_url = f"/api/v1/searches/{clone.json()['id']}/"
    assert teammate.post(clone_url + "pause/").status_code == 200
    admin = _client(api_client, actors.alice)
    assert admin.post(clone_url + "resume/").json()["status"] == "running"
    assert admin.post(clone_url + "cancel/").json()["status"] == "cancelled"
    assert admin.post(clone_url + "cancel/").status_code == 409
    assert admin.delete(url).status_code == 204
    assert not SearchJob.objects.filter(pk=job.pk).exists()


def test_candidates_filters_and_ordering(api_client, actors, finished_job):
    client = _client(api_client, actors.alice)
    job = finished_job
    everything = client.get(f"/api/v1/candidates/?job={job.pk}&limit=1000").json()
    assert everything["count"] == job.candidates.count()
    pareto = client.get(f"/api/v1/candidates/?job={job.pk}&pareto=true").json()["results"]
    assert pareto and all(c["is_pareto"] for c in pareto)
    assert len(pareto) == job.candidates.filter(is_pareto=True).count()
    ordered = client.get(f"/api/v1/candidates/?job={job.pk}&ordering=-latency&limit=1000").json()["results"]
    latencies = [c["latency_s"] for c in ordered]
    assert latencies == sorted(latencies, reverse=True)
    ranged = client.get(f"/api/v1/candidates/?job={job.pk}&min_d_model=64&max_proxy=100000").json()["results"]
    assert ranged and all(c["d_model"] >= 64 and c["proxy"] <= 100000 for c in ranged)
    bad = client.get(f"/api/v1/candidates/?job={job.pk}&min_proxy=many")
    assert bad.status_code == 400 and "min_proxy" in bad.json()


def test_after_cursor_returns_only_what_changed(api_client, actors, device, no_messages):
    from tests.searches.factories import complete_measurements

    client = _client(api_client, actors.alice)
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="live", spec=spec())
    services.do_advance_search(job.pk)
    first = client.get(f"/api/v1/candidates/?job={job.pk}&after=0").json()
    assert len(first["results"]) == 6 and all(c["status"] == "measuring" for c in first["results"])
    cursor = first["next_after"]
    assert client.get(f"/api/v1/candidates/?job={job.pk}&after={cursor}").json()["results"] == []
    complete_measurements()
    services.do_advance_search(job.pk)  # syncs the 6 and proposes generation 1
    update = client.get(f"/api/v1/candidates/?job={job.pk}&after={cursor}").json()
    changed = {c["archid"]: c for c in update["results"]}
    assert len(changed) > 6 and update["next_after"] > cursor
    assert update["job"]["generation"] == 2 and update["job"]["hypervolumes"]
    assert client.get("/api/v1/candidates/?after=3").status_code == 400


def test_frontier_for_two_and_three_objectives(api_client, actors, finished_job):
    client = _client(api_client, actors.bob)
    url = f"/api/v1/searches/{finished_job.pk}/frontier/"
    three = client.get(url).json()
    assert three["objectives"] == ["proxy", "latency", "memory"]
    assert {c["archid"] for c in three["results"]} == set(
        finished_job.candidates.filter(is_pareto=True).values_list("archid", flat=True))
    two = client.get(url + "?objectives=proxy,latency").json()["results"]
    proxies = [c["proxy"] for c in two]
    assert proxies == sorted(proxies, reverse=True)
    for a in two:  # nothing in the 2-D front dominates another member
        assert not any(b["proxy"] >= a["proxy"] and b["latency_s"] <= a["latency_s"] and b is not a and
                       (b["proxy"], b["latency_s"]) != (a["proxy"], a["latency_s"]) for b in two)
    assert client.get(url + "?objectives=proxy,speed").status_code == 400


def test_frontier_body_is_shared_until_the_job_changes(api_client, actors, finished_job, django_assert_max_num_queries):
    client = _client(api_client, actors.bob)
    url = f"/api/v1/searches/{finished_job.pk}/frontier/"
    first = client.get(url).json()
    with django_assert_max_num_queries(3):  # the user, the job; no candidate rows: the body comes from the cache
        assert client.get(url).json() == first
    winner = finished_job.candidates.filter(is_pareto=True).first()
    winner.is_pareto = False
    winner.save()
    finished_job.revision += 1
    finished_job.save(update_fields=["revision"])
    second = client.get(url).json()
    assert second["revision"] == first["revision"] + 1
    assert winner.archid not in {c["archid"] for c in second["results"]}
    assert client.get(url, HTTP_ACCEPT="text/html").status_code == 200  # the browsable API still renders


def test_exports_csv_and_json(api_client, actors, finished_job):
    client = _client(api_client, actors.bob)
    response = client.get(f"/api/v1/searches/{finished_job.pk}/export.csv/")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == finished_job.candidates.count()
    assert float(rows[0]["latency_median_s"]) > 0 and rows[0]["device"] == "edge-1"
    data = json.loads(b"".join(client.get(f"/api/v1/searches/{finished_job.pk}/export.json/").streaming_content))
    assert data["search"]["id"] == finished_job.pk
    assert [c["archid"] for c in data["candidates"]] == [r["archid"] for r in rows]


def test_devices_presets_and_previews(api_client, actors, device):
    from lts_web import queueing

    client = _client(api_client, actors.charlie)
    # The broker is shared with the suite's other tests (and earlier runs on the same Redis): start from an empty queue.
    broker = queueing.broker_client()
    keys = ["profile.edge-1" + suffix for suffix in queueing.PRIORITY_SUFFIXES]
    broker.delete(*keys)
    devices = client.get("/api/v1/devices/").json()["results"]
    assert devices[0]["name"] == "edge-1" and devices[0]["online"] is True
    assert devices[0]["queue"] == "profile.edge-1" and devices[0]["queue_length"] == 0
    broker.lpush("profile.edge-1", "{}")  # one message waiting: the length is the broker's
    try:
        assert client.get("/api/v1/devices/").json()["results"][0]["queue_length"] == 1
    finally:
        broker.delete(*keys)
    presets = {p["name"]: p for p in client.get("/api/v1/presets/").json()}
    assert presets["gpt2-lts"]["size"] == 5880 and presets["tiny"]["proxy_min"] > 0

    ok = client.post("/api/v1/architectures/preview/", {"n_layer": 7, "d_model": 576, "d_inner": 832, "n_head": 8},
                     format="json")
    assert ok.status_code == 200
    assert ok.json()["archid"] == "gpt2_0e1b5a3c867d6473da270799061f3089a1df5afd"
    assert ok.json()["non_embedding_params"] == 16_042_240 and ok.json()["valid"] is True
    bad = client.post("/api/v1/architectures/preview/", {"config": {"n_layer": 2, "d_model": 100, "d_inner": 64,
                                                                    "n_head": 8}}, format="json")
    assert bad.status_code == 400 and bad.json()["valid"] is False and "n_head" in bad.json()["errors"]
    space = client.post("/api/v1/spaces/preview/", {"space": SMALL_SPACE}, format="json").json()
    assert space["size"] == 24 and space["proxy_min"] < space["proxy_max"]
    wrong = client.post("/api/v1/spaces/preview/", {"space": {**SMALL_SPACE, "d_model": "range(1, 10**9)"}},
                        format="json")
    assert wrong.status_code == 400 and "space.d_model" in wrong.json()


def test_list_endpoints_run_a_bounded_number_of_queries(api_client, actors, device, no_messages,
                                                        django_assert_max_num_queries):
    for i in range(8):
        run_job(services.do_create_search(owner=actors.alice, team=actors.acme, name=f"s{i}",
                                          spec=spec(seed=i, budget={"generations": 1})))
    client = _client(api_client, actors.bob)
    job = SearchJob.objects.first()
    for url in ("/api/v1/searches/", f"/api/v1/candidates/?job={job.pk}", f"/api/v1/candidates/?job={job.pk}&after=0",
                "/api/v1/measurements/", "/api/v1/devices/", f"/api/v1/searches/{job.pk}/frontier/"):
        with django_assert_max_num_queries(6):
            assert client.get(url).status_code == 200, url


def test_anonymous_api_calls_are_refused(api_client):
    for url in ("/api/v1/searches/", "/api/v1/candidates/", "/api/v1/devices/", "/api/v1/presets/"):
        assert api_client.get(url).status_code in (401, 403)


def test_openapi_schema_has_no_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/v1/searches/{id}/frontier/" in (tmp_path / "schema.yml").read_text()


def test_a_job_page_counts_from_the_job_row_and_filtered_pages_count_rows(api_client, actors, finished_job,
                                                                          django_assert_num_queries):
    client = _client(api_client, actors.bob)
    total = finished_job.candidates.count()
    assert finished_job.counts["candidates"] == total
    url = f"/api/v1/candidates/?job={finished_job.pk}&limit=2"
    with django_assert_num_queries(3):  # the job (visibility and counts), page keys, page rows: no COUNT
        assert client.get(url).json()["count"] == total
    first = finished_job.candidates.filter(generation=0).count()
    assert 0 < first < total
    assert client.get(url + "&generation=0").json()["count"] == first
