"""The search policy measure "predicted", step by step in-process: predictions are never reported as measured, a run
is deterministic given its seed and the cache at start, pause/resume, the design phase, measure on demand."""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from searches import services
from searches.core.cost_model import MIN_OBSERVATIONS
from searches.core.pareto import OBJECTIVES, hypervolume, pareto_mask
from searches.models import Measurement, SearchJob
from searches.specs import profile_settings
from tests.searches.core.test_cost_model import _truth
from tests.searches.factories import FAST_PROFILING, complete_measurements, run_job, spec

pytestmark = pytest.mark.django_db

SETTINGS = profile_settings(spec())  # FAST_PROFILING: what the fake profiler's costs are computed for


def smooth(arch) -> dict[str, float]:
    """The cost-model tests' synthetic ground truth without noise: latency and memory smooth in the shape."""
    obs = _truth(arch, np.random.default_rng(0), noise=0.0, settings=SETTINGS)
    return {"latency": obs.latency_s, "memory": obs.memory_mb}


def tiny(measure: str = "predicted", **overrides) -> dict:
    data = {"preset": "tiny", "space": None, "measure": measure, "algorithm": "evolution", "profiling": FAST_PROFILING,
            "params": {"init_population": 10}, "budget": {"generations": 8}, "seed": 5}
    data.update(overrides)
    return spec(**data)


def _run(actors, data: dict, name: str = "p", **kwargs) -> SearchJob:
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name=name, spec=data)
    run_job(job, objectives=smooth, **kwargs)
    return job


def _rows(job: SearchJob) -> list[tuple]:
    return list(job.candidates.order_by("generation", "position")
                .values_list("archid", "status", "origin", "is_pareto", "predicted"))


def _measured_points(job: SearchJob) -> np.ndarray:
    rows = job.candidates.filter(status="measured", feasible=True).select_related("measurement")
    return np.array([[c.non_embedding_params, c.measurement.latency_median_s, c.measurement.peak_memory_mb]
                     for c in rows])


def test_predicted_candidates_are_never_reported_as_measured(actors, device, no_messages, api_client):
    job = _run(actors, tiny())
    assert job.status == "completed"
    predicted = job.candidates.filter(status="predicted")
    assert predicted.exists() and job.candidates.filter(status="measured").exists()
    for c in predicted:
        assert c.measurement_id is None and c.feasible is None and not c.is_pareto
        assert services.candidate_objectives(c) is None
        for value, low, high in c.predicted.values():
            assert low <= value <= high
    assert job.counts["predicted"] == predicted.count()
    # The frontier is the non-dominated measured, feasible candidates only.
    points = _measured_points(job)
    pareto = set(job.candidates.filter(is_pareto=True).values_list("archid", flat=True))
    measured = list(job.candidates.filter(status="measured", feasible=True).values_list("archid", flat=True))
    directions = [OBJECTIVES[n] for n in job.objectives]
    assert pareto == {a for a, on in zip(measured, pareto_mask(points, directions)) if on}

    api_client.force_authenticate(actors.alice)
    frontier = api_client.get(f"/api/v1/searches/{job.pk}/frontier/").json()["results"]
    assert {r["archid"] for r in frontier} == pareto and all(r["status"] == "measured" for r in frontier)
    export = list(csv.DictReader(io.StringIO(b"".join(
        api_client.get(f"/api/v1/searches/{job.pk}/export.csv/").streaming_content).decode())))
    for row in export:
        if row["status"] == "predicted":
            assert row["latency_median_s"] == "" and row["peak_memory_mb"] == "" and row["is_pareto"] == "False"
    page = api_client.get(f"/api/v1/candidates/?job={job.pk}&status=predicted&limit=500").json()
    assert page["count"] == predicted.count()
    assert all(r["latency_s"] is None and r["predicted"]["latency"][1] <= r["predicted"]["latency"][0]
               for r in page["results"])
    # The hypervolume history is the measured frontier's.
    reference = job.hypervolumes[0]["reference"]
    front = points[pareto_mask(points, directions)]
    assert job.hypervolumes[-1]["hypervolume"] == pytest.approx(hypervolume(front, reference, directions))


def test_the_first_generation_measures_a_space_filling_design_until_a_model_exists(actors, device, no_messages):
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="d", spec=tiny())
    services.do_advance_search(job.pk)
    first = job.candidates.filter(generation=0)
    design = first.filter(origin="design")
    assert first.count() == MIN_OBSERVATIONS and design.count() == MIN_OBSERVATIONS - 10
    assert set(first.values_list("status", flat=True)) == {"measuring"}  # no model: nothing predicted
    complete_measurements(smooth)
    services.do_advance_search(job.pk)  # generation 1 has a model: some candidates are predicted
    second = job.candidates.filter(generation=1)
    assert second.exists() and all(c.predicted for c in second.filter(status__in=["predicted", "measuring"]))
    assert not second.filter(origin="design").exists()


def test_a_run_is_deterministic_given_its_seed_and_the_cache_at_start(actors, device, no_messages):
    alone = _rows(_run(actors, tiny(), name="alone"))
    Measurement.objects.all().delete()
    SearchJob.objects.all().delete()
    # The same search again, with another search measuring the same key while it runs: the other's later
    # measurements are not in this job's cache (cache_cutoff), so its decisions cannot change.
    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="again", spec=tiny())
    other = services.do_create_search(owner=actors.alice, team=actors.acme, name="other", spec=tiny("all", seed=9))
    for _ in range(40):
        outcomes = {services.do_advance_search(j.pk) for j in (other, job)}
        complete_measurements(smooth)
        if outcomes == {"completed"}:
            break
    assert _rows(job) == alone


def test_pause_and_resume_decide_the_same(actors, device, no_messages):
    plain = _rows(_run(actors, tiny(seed=3), name="plain"))
    Measurement.objects.all().delete()
    paused = _run(actors, tiny(seed=3), name="paused", pause_after=3)
    assert paused.status == "completed" and _rows(paused) == plain


def test_predicted_measures_fewer_and_reaches_the_hypervolume_of_measuring_all(actors, device, no_messages):
    every = _run(actors, tiny("all"), name="all")
    points = {"all": _measured_points(every)}
    measured = {"all": every.candidates.filter(status="measured").count()}
    Measurement.objects.all().delete()  # measure afresh
    some = _run(actors, tiny("predicted"), name="predicted")
    points["predicted"] = _measured_points(some)
    measured["predicted"] = some.candidates.filter(status="measured").count()
    assert measured["predicted"] < measured["all"], measured
    # One reference for both (each job's own comes from its first generation): twice the worst of either.
    both = np.vstack(list(points.values()))
    reference = [0.0, 2 * both[:, 1].max(), 2 * both[:, 2].max()]
    directions = list(OBJECTIVES.values())
    volume = {name: hypervolume(p[pareto_mask(p, directions)], reference, directions) for name, p in points.items()}
    assert volume["predicted"] >= 0.98 * volume["all"], (volume, measured)


def test_measure_on_demand(actors, device, no_messages, api_client):
    job = _run(actors, tiny(budget={"generations": 3}))  # finished by its budget, not by an exhausted space
    assert job.status == "completed" and len(job.hypervolumes) == job.generation == 3
    target = job.candidates.filter(status="predicted").first()
    url = f"/api/v1/candidates/{target.pk}/measure/"
    api_client.force_authenticate(actors.charlie)  # not in the team: the candidate is not there
    assert api_client.post(url).status_code == 404
    api_client.force_authenticate(actors.bob)  # in the team, neither owner nor admin: as for retry
    assert api_client.post(url).status_code == 403
    api_client.force_authenticate(actors.alice)
    response = api_client.post(url)
    assert response.status_code == 200 and response.json()["status"] == "measuring"
    assert response.json()["predicted"] == target.predicted
    assert api_client.post(url).status_code == 409  # not predicted any more
    job.refresh_from_db()
    assert job.status == "running"
    # The model was wrong about it: it is faster and smaller than anything measured, so it joins the frontier.
    complete_measurements(lambda a: {"latency": 1e-6, "memory": 1e-3} if a.archid == target.archid else smooth(a))
    assert services.do_advance_search(job.pk) == "completed"
    target.refresh_from_db()
    assert target.status == "measured" and target.measurement.status == "done" and target.is_pareto
    job.refresh_from_db()
    assert job.status == "completed" and len(job.hypervolumes) == 3  # the history of the generations stays
    # The frontier was recomputed with it.
    points = _measured_points(job)
    measured = list(job.candidates.filter(status="measured", feasible=True).values_list("archid", flat=True))
    mask = pareto_mask(points, list(OBJECTIVES.values()))
    assert set(job.candidates.filter(is_pareto=True).values_list("archid", flat=True)) == {
        a for a, on in zip(measured, mask) if on}


def test_measure_is_validated(api_client, actors, device):
    api_client.force_authenticate(actors.alice)
    body = {"name": "x", "preset": "tiny", "device": "edge-1", "profiling": FAST_PROFILING}
    response = api_client.post("/api/v1/searches/", {**body, "measure": "some", "params": {"exploration": 2}},
                               format="json")
    assert response.status_code == 400
    errors = response.json()
    assert "must be one of all, predicted" in str(errors["measure"]) and "params.exploration" in errors
    response = api_client.post("/api/v1/searches/", {**body, "measure": "predicted", "objectives": ["proxy"],
                                                     "device": None}, format="json")
    assert response.status_code == 400 and "latency or memory" in str(response.json()["measure"])
    response = api_client.post("/api/v1/searches/", {**body, "measure": "predicted"}, format="json")
    assert response.status_code == 201 and response.json()["spec"]["measure"] == "predicted"
    assert response.json()["spec"]["params"]["exploration"] == 0.05
    default = api_client.post("/api/v1/searches/", body, format="json").json()
    assert default["spec"]["measure"] == "predicted"


def test_lts_search_measure_flag(actors, device, no_messages):
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("lts_search", "--preset", "tiny", "--device", "edge-1", "--user", "alice", "--name", "cli",
                 "--measure", "predicted", "--no-wait", stdout=out)
    job = SearchJob.objects.get(name="cli")
    assert job.spec["measure"] == "predicted" and f"search #{job.pk}" in out.getvalue()
    call_command("lts_search", "--preset", "tiny", "--device", "edge-1", "--user", "alice", "--name", "default",
                 "--no-wait", stdout=io.StringIO())
    assert SearchJob.objects.get(name="default").spec["measure"] == "predicted"
    call_command("lts_search", "--preset", "tiny", "--device", "edge-1", "--user", "alice", "--name", "all",
                 "--measure", "all", "--no-wait", stdout=io.StringIO())
    assert SearchJob.objects.get(name="all").spec["algorithm"] == "evolution"
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("lts_search", "--preset", "tiny", "--measure", "some", "--user", "alice", "--no-wait")
    with pytest.raises(CommandError, match="measure: .*latency or memory"):
        call_command("lts_search", "--preset", "tiny", "--objectives", "proxy", "--measure", "predicted",
                     "--user", "alice", "--no-wait")
    finished = _run(actors, tiny(), name="done")
    out = io.StringIO()
    call_command("lts_search", "--follow", str(finished.pk), stdout=out)
    predicted = finished.candidates.filter(status="predicted").count()
    assert f"({predicted} predicted, not measured)" in out.getvalue()


def test_candidate_page_shows_the_prediction_and_a_measure_button(client, actors, device, no_messages):
    job = _run(actors, tiny())
    target = job.candidates.filter(status="predicted").first()
    url = f"/searches/{job.pk}/candidates/{target.archid}/"
    client.force_login(actors.alice)
    page = client.get(url).content.decode()
    assert 'id="measure-candidate"' in page and f'data-url="/api/v1/candidates/{target.pk}/measure/"' in page
    assert "predicted latency" in page and "candidate.js" in page and "onclick" not in page
    assert "(not measured)" in page
    client.force_login(actors.bob)  # a teammate who may not change the search: no button
    assert 'id="measure-candidate"' not in client.get(url).content.decode()
    measured = job.candidates.filter(status="measured").first()
    client.force_login(actors.alice)
    assert 'id="measure-candidate"' not in client.get(
        f"/searches/{job.pk}/candidates/{measured.archid}/").content.decode()
    # A candidate the algorithm "scored" picked carries the prediction it was picked on, beside its measurement.
    picked = _run(actors, scored(), name="scored").candidates.filter(origin="scored", status="measured").first()
    page = client.get(f"/searches/{picked.job_id}/candidates/{picked.archid}/").content.decode()
    assert "predicted latency" in page and "(before it was measured)" in page and "(not measured)" not in page
    assert page.count("measured inside it") == 2 and "measured outside this interval" not in page
    # A measurement beyond its interval says so, whatever the rounding of the figures beside it.
    Measurement.objects.filter(pk=picked.measurement_id).update(
        latency_median_s=picked.predicted["latency"][2] * 1.001)
    page = client.get(f"/searches/{picked.job_id}/candidates/{picked.archid}/").content.decode()
    assert page.count("measured outside this interval") == 1 and page.count("measured inside it") == 1
    # A predicted candidate, not measured, is neither.
    page = client.get(url).content.decode()
    assert "measured inside it" not in page and "measured outside this interval" not in page


def test_search_page_counts_measured_of_proposed_and_time_saved(client, actors, device, no_messages):
    job = _run(actors, tiny())
    client.force_login(actors.alice)
    page = client.get(f"/searches/{job.pk}/").content.decode()
    counts = job.counts
    saved = counts["predicted"] * job.hardware_seconds / counts["hardware_measured"]  # 0.5 s a measurement here
    assert f"measured {counts['measured']} of {counts['candidates']} proposed, hardware time saved ~" in page
    assert saved == pytest.approx(0.5 * counts["predicted"])
    assert "<option>predicted</option>" in page and "measure predicted (exploration 0.05)" in page
    plain = _run(actors, tiny("all", seed=11), name="plain")
    assert f"{plain.counts['measured']}/{plain.counts['candidates']} measured" in client.get(
        f"/searches/{plain.pk}/").content.decode()
    whole = _run(actors, scored(seed=12), name="scored")
    page = client.get(f"/searches/{whole.pk}/").content.decode()
    assert f"measured {whole.counts['measured']} of 48 architectures in the space (the others only predicted, not kept)" in page
    assert "10 per round, smallest gain 0.001" in page and '"space_size": 48' in page
    # The page's first load and its poll carry the predictions the charts draw as hollow markers.
    points = client.get(f"/api/v1/searches/{job.pk}/points/").json()["columns"]
    drawn = [p for p, s in zip(points["predicted"], points["status"]) if s == "predicted"]
    assert len(drawn) == counts["predicted"] and all(p["latency"][1] <= p["latency"][0] for p in drawn)


def test_search_page_says_how_the_intervals_held_on_what_was_measured(client, actors, device, no_messages):
    from searches.services.jobs import _refresh_counts

    job = _run(actors, scored(seed=12), name="scored")
    checked = list(job.candidates.filter(status="measured", predicted__isnull=False).select_related("measurement"))
    assert checked and job.counts["predictions_checked"] == len(checked)

    def inside(c, name):
        value = {"latency": c.measurement.latency_median_s, "memory": c.measurement.peak_memory_mb}[name]
        return c.predicted[name][1] <= value <= c.predicted[name][2]

    held = {name: sum(inside(c, name) for c in checked) for name in ("latency", "memory")}
    assert (job.counts["latency_inside"], job.counts["memory_inside"]) == (held["latency"], held["memory"])
    client.force_login(actors.alice)
    page = client.get(f"/searches/{job.pk}/").content.decode()
    assert (f"latency inside its 90% interval for {held['latency']} of {len(checked)} measured candidates, peak "
            f"memory for {held['memory']} of {len(checked)} (over {len(checked)}, "
            f"±{math.floor(30 / math.sqrt(len(checked)) + 0.5)} points)") in page
    # A measurement far above its interval counts as a miss at the next refresh of the counters.
    miss = next(c for c in checked if inside(c, "latency"))
    Measurement.objects.filter(pk=miss.measurement_id).update(latency_median_s=3 * miss.predicted["latency"][2])
    _refresh_counts(job)
    assert job.counts["latency_inside"] == held["latency"] - 1 and job.counts["memory_inside"] == held["memory"]
    # A search that measures everything predicted nothing: no such line.
    plain = _run(actors, tiny("all", seed=11), name="plain")
    assert plain.counts["predictions_checked"] == 0
    assert 'id="predictions" hidden' in client.get(f"/searches/{plain.pk}/").content.decode()


def test_a_step_lost_with_its_worker_is_replayed_identically(actors, device, no_messages):
    """A worker killed mid-step loses the step's one transaction; the reaper's replay must decide the same. Every
    step here first dies once (rolled back as a killed worker's would be), then runs again."""
    plain = _rows(_run(actors, tiny(seed=4), name="plain"))
    Measurement.objects.all().delete()
    job = _run_losing_every_step_once(actors, tiny(seed=4))
    assert job.status == "completed" and _rows(job) == plain


def _run_losing_every_step_once(actors, data: dict) -> SearchJob:
    """Run a search in which every step first dies once (rolled back as a killed worker's would be), then runs
    again, as the reaper's replay does."""
    from django.db import transaction

    job = services.do_create_search(owner=actors.alice, team=actors.acme, name="killed", spec=data)
    for _ in range(40):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.do_advance_search(job.pk)
                raise RuntimeError("worker killed before the commit")
        if services.do_advance_search(job.pk) == "completed":
            break
        complete_measurements(smooth)
    job.refresh_from_db()
    return job


def scored(**overrides) -> dict:
    return tiny(algorithm="scored", **overrides)


def test_scored_measures_a_fraction_and_beats_the_hypervolume_of_measuring_all(actors, device, no_messages):
    """The algorithm "scored" on the 5,880 architectures of gpt2-lts against evolution measuring all, both 5
    generations on the smooth synthetic device: a fraction of the measurements for at least the same hypervolume."""
    gpt2 = {"preset": "gpt2-lts", "budget": {"generations": 5}, "params": {}}
    every = _run(actors, tiny("all", **gpt2), name="all")
    points = {"all": _measured_points(every)}
    Measurement.objects.all().delete()  # measure afresh
    some = _run(actors, scored(**gpt2), name="scored")
    points["scored"] = _measured_points(some)
    assert some.status == "completed" and not some.candidates.filter(status="predicted").exists()
    assert set(some.candidates.values_list("origin", flat=True)) == {"design", "scored"}
    measured = {name: job.candidates.filter(status="measured").count() for name, job in (("all", every),
                                                                                          ("scored", some))}
    assert measured["scored"] <= 0.5 * measured["all"], measured
    assert measured["scored"] <= MIN_OBSERVATIONS + 4 * 10  # the design, then at most a batch a round
    both = np.vstack(list(points.values()))
    reference = [0.0, 1.1 * both[:, 1].max(), 1.1 * both[:, 2].max()]
    directions = list(OBJECTIVES.values())
    volume = {name: hypervolume(p[pareto_mask(p, directions)], reference, directions) for name, p in points.items()}
    assert volume["scored"] >= volume["all"], (volume, measured)
    # Each scored candidate carries the prediction it was picked on; the design ones have none.
    for c in some.candidates.all():
        assert (c.predicted is None) == (c.origin == "design")


def test_scored_is_deterministic_and_replays_a_lost_step_identically(actors, device, no_messages):
    plain = _rows(_run(actors, scored(seed=4, params={"exploration": 0.3}), name="plain"))
    Measurement.objects.all().delete()
    job = _run_losing_every_step_once(actors, scored(seed=4, params={"exploration": 0.3}))
    assert job.status == "completed" and _rows(job) == plain
    assert job.error == "" and len(plain) < 48  # stopped when nothing left could add to the frontier


def test_scored_is_validated(api_client, actors, device):
    api_client.force_authenticate(actors.alice)
    body = {"name": "x", "preset": "tiny", "device": "edge-1", "profiling": FAST_PROFILING, "algorithm": "scored"}
    response = api_client.post("/api/v1/searches/", {**body, "measure": "all"}, format="json")
    assert response.status_code == 400 and "measure \"predicted\"" in response.json()["algorithm"][0]
    huge = {"n_layer": {"range": [1, 101, 1]}, "d_model": {"range": [64, 4096, 64]},
            "d_inner": {"range": [64, 4096, 64]}, "n_head": [1, 2, 4, 8]}
    response = api_client.post("/api/v1/searches/", {**body, "preset": None, "space": huge, "measure": "predicted"},
                               format="json")
    assert response.status_code == 400 and "at most 100,000" in response.json()["algorithm"][0]
    response = api_client.post("/api/v1/searches/", {**body, "measure": "predicted",
                                                     "params": {"batch": 0, "min_gain": 0.9}}, format="json")
    errors = response.json()
    assert response.status_code == 400 and "params.batch" in errors and "params.min_gain" in errors
    response = api_client.post("/api/v1/searches/", {**body, "measure": "predicted", "params": {"batch": 4}},
                               format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["spec"]["params"]["batch"] == 4


def test_a_search_on_a_device_measures_what_the_cost_model_picks_by_default(api_client, actors, device):
    api_client.force_authenticate(actors.alice)
    body = {"name": "x", "preset": "tiny", "device": "edge-1", "profiling": FAST_PROFILING}
    created = api_client.post("/api/v1/searches/", body, format="json").json()["spec"]
    assert (created["measure"], created["algorithm"]) == ("predicted", "scored")
    # Measuring every candidate: the evolution; nothing measured (proxy only): the evolution, measure all.
    every = api_client.post("/api/v1/searches/", {**body, "measure": "all"}, format="json").json()["spec"]
    assert (every["measure"], every["algorithm"]) == ("all", "evolution")
    proxy = api_client.post("/api/v1/searches/", {**body, "objectives": ["proxy"], "device": None},
                            format="json").json()["spec"]
    assert (proxy["measure"], proxy["algorithm"]) == ("all", "evolution")
    # A space too large to score whole: the evolution with the policy.
    huge = {"n_layer": {"range": [1, 101, 1]}, "d_model": {"range": [64, 4096, 64]},
            "d_inner": {"range": [64, 4096, 64]}, "n_head": [1, 2, 4, 8]}
    large = api_client.post("/api/v1/searches/", {**body, "preset": None, "space": huge}, format="json").json()
    assert (large["spec"]["measure"], large["spec"]["algorithm"]) == ("predicted", "evolution"), large
