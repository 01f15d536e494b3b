"""Dashboard pages: team scoping (owner, teammate, outsider) on each page, what they render, the query bound of the
team dashboard, the new-search form's error containers, and the columnar points endpoint the detail page loads."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from lts_web.numbers import significant
from searches import services
from searches.models import Candidate, Device, Measurement, SearchJob
from tests.searches.factories import run_job, spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_job(actors, device, no_messages):
    job = services.do_create_search(owner=actors.bob, team=actors.acme, name="bob-search", spec=spec())
    run_job(job)
    job.refresh_from_db()
    return job


def _get(client, user, path):
    client.force_login(user)
    return client.get(path)


def _page_paths(job) -> list[str]:
    candidate = job.candidates.order_by("generation", "position").first()
    return [f"/searches/{job.pk}/", f"/searches/{job.pk}/candidates/{candidate.archid}/"]


# ---- scoping --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("who, status", [("bob", 200), ("alice", 200), ("charlie", 404)])
def test_search_and_candidate_pages_are_team_scoped(client, actors, finished_job, who, status):
    """bob owns the search, alice is his teammate (and team admin), charlie is in another team: 404, not 403."""
    for path in _page_paths(finished_job):
        response = _get(client, getattr(actors, who), path)
        assert response.status_code == status, path
        if status == 200:
            assert finished_job.name in response.content.decode()


def test_dashboard_shows_only_the_users_teams_searches(client, actors, finished_job, device):
    theirs = services.do_create_search(owner=actors.charlie, team=actors.other, name="charlie-secret", spec=spec())
    for who in ("bob", "alice"):
        page = _get(client, getattr(actors, who), "/").content.decode()
        assert "bob-search" in page and f"/searches/{finished_job.pk}/" in page
        assert "charlie" not in page and f"/searches/{theirs.pk}/" not in page
    page = _get(client, actors.charlie, "/").content.decode()
    assert "charlie-secret" in page and "bob-search" not in page


def test_new_search_and_devices_pages_for_any_member(client, actors, device):
    for who in ("alice", "bob", "charlie"):
        assert _get(client, getattr(actors, who), "/searches/new/").status_code == 200
        page = _get(client, getattr(actors, who), "/devices/").content.decode()
        assert "edge-1" in page and "Test CPU" in page


@pytest.mark.parametrize("path", ["/", "/searches/new/", "/searches/1/", "/searches/1/candidates/gpt2_x/",
                                  "/devices/", "/teams/"])
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response.url.startswith("/login/?next=")


def test_unknown_candidate_of_a_visible_search_is_404(client, actors, finished_job):
    assert _get(client, actors.bob, f"/searches/{finished_job.pk}/candidates/gpt2_nope/").status_code == 404


# ---- the team dashboard ---------------------------------------------------------------------------------------------

def test_dashboard_rows_filters_and_pagination(client, actors, finished_job, device, no_messages):
    for i in range(30):
        services.do_create_search(owner=actors.alice, team=actors.acme, name=f"alice-{i}", spec=spec())
    client.force_login(actors.bob)
    page = client.get("/").content.decode()
    assert "31 searches" in page and "page 1 of 2" in page
    page2 = client.get("/?page=2").content.decode()
    assert "bob-search" in page2  # oldest last
    mine = client.get("/?owner=bob").content.decode()
    assert "1 search<" in mine and "alice-0" not in mine
    # progress of the finished job: all 3 generations, counts from job.counts, frontier size and hypervolume
    row = re.search(rf'<tr data-job="{finished_job.pk}">(.*?)</tr>', mine, re.S).group(1)
    counts = finished_job.counts
    assert "gen 3/3" in row and f"{counts['measured']}/{counts['candidates']} measured" in row
    assert 'style="width: 100%"' in row and f'<td class="num">{counts["pareto"]}</td>' in row
    hypervolume = finished_job.hypervolumes[-1]["hypervolume"]
    assert significant(hypervolume) in row  # lts_web.numbers: one rule on every page
    assert "completed" in row and "edge-1" in row
    queued = client.get("/?status=queued").content.decode()
    assert "30 searches" in queued and "bob-search" not in queued


def test_dashboard_runs_a_constant_number_of_queries(client, actors, device, no_messages,
                                                     django_assert_max_num_queries):
    client.force_login(actors.bob)
    for i in range(40):
        services.do_create_search(owner=actors.alice, team=actors.acme, name=f"s{i}", spec=spec())
    # session, user, teams, owners, count, page: none per row, no COUNT over candidates
    with django_assert_max_num_queries(6) as captured:
        assert client.get("/?owner=alice").status_code == 200
    assert not any("searches_candidate" in q["sql"] for q in captured.captured_queries)


def test_teams_page_lists_members(client, actors):
    page = _get(client, actors.bob, "/teams/").content.decode()
    assert "acme" in page and "alice" in page and "charlie" not in page


# ---- search detail --------------------------------------------------------------------------------------------------

def test_detail_page_wires_the_live_view(client, actors, finished_job):
    page = _get(client, actors.bob, f"/searches/{finished_job.pk}/").content.decode()
    for chart in ("chart-frontier", "chart-3d", "chart-hv"):
        assert f'id="{chart}"' in page
    assert '<script type="module" src="/static/plotly/plotly-lts.js">' in page
    assert '<script type="module" src="/static/searches/detail/main.js">' in page  # after Plotly.js, in order
    # the column names of the points come from the page data, as the API names them, not from a copy in the script
    from searches.api import POINT_COLUMNS
    assert json.dumps(list(POINT_COLUMNS)) in page and '"columns_from_config": ["vocab_size", "max_sequence_length"]' in page
    assert f"/api/v1/searches/{finished_job.pk}/export.csv/" in page
    assert f"/api/v1/searches/{finished_job.pk}/export.json/" in page
    assert f'"points": "/api/v1/searches/{finished_job.pk}/points/"' in page


PLOTLY_DIR = Path(__file__).resolve().parents[2] / "lts_web/static/plotly"


def _plotly_files() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(PLOTLY_DIR.glob("*.js"))}


def test_plotly_is_served_by_the_project():
    """The module the pages load, its shared chunk and the 3-D chunk: each one Plotly.js's build with its licence, and
    every import between them names a file that is there (a rebuild commits its new chunks or the pages break)."""
    files = _plotly_files()
    assert finders.find("plotly/plotly-lts.js") == str(PLOTLY_DIR / "plotly-lts.js")
    assert len(files) == 3 and {name.split("-")[2] for name in files if name.count("-") == 3} == {"chunk", "three"}
    imported = set()
    for name, text in files.items():
        assert text.startswith("/**\n* plotly.js v4.1.1, custom bundle"), name
        for target in re.findall(r"""(?:\bfrom|\bimport\(?)\s*["']\./([^"']+)["']""", text):
            assert target in files, f"{name} imports ./{target}, which is not in {PLOTLY_DIR}"
            imported.add(target)
    assert imported == set(files) - {"plotly-lts.js"}  # no stale chunk of an earlier build left beside them
    three = next(name for name in files if "-three-" in name)
    assert f'import("./{three}")' in files["plotly-lts.js"]  # fetched on demand, not with the page


def test_the_plotly_bundle_holds_every_trace_type_the_pages_draw():
    """The bundle registers scatter and scattergl, and scatter3d in a chunk of its own: a page drawing another type
    would show nothing, and one drawing scatter3d must load its chunk first (Plotly.load3d())."""
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

    trace_types = {name.lower() for name in dir(go)  # dir: graph_objects loads its classes lazily
                   if isinstance(getattr(go, name), type) and issubclass(getattr(go, name), BaseTraceType)}
    root = Path(__file__).resolve().parents[2]

    def registered(name: str) -> set[str]:
        text = (root / "lts_web/frontend/plotly" / name).read_text()
        return set(re.findall(r"require\('plotly\.js/lib/(\w+)'\)", text)) - {"core"}

    on_load, on_demand = {"scatter"} | registered("entry.js"), registered("three.js")
    assert (on_load, on_demand) == ({"scatter", "scattergl"}, {"scatter3d"})
    drawn = set()  # every quoted trace-type name in the pages' own scripts and templates that call Plotly
    sources = [path for app in ("lts_web", "searches", "models_zoo") for pattern in ("**/*.js", "**/*.html")
               for path in (root / app).glob(pattern) if not {"node_modules", "frontend"} & set(path.parts)
               and path.parent != PLOTLY_DIR]
    for source in sources:
        text = source.read_text()
        if "Plotly." in text:
            types = set(re.findall(r"[\"'`](\w+)[\"'`]", text)) & trace_types
            drawn |= types
            if types & on_demand:
                assert "Plotly.load3d()" in text, f"{source} draws {sorted(types & on_demand)} without loading it"
    assert {"scatter", "scattergl", "scatter3d"} <= drawn  # the scan does find the search page's traces
    assert drawn <= on_load | on_demand, (
        f"pages draw {sorted(drawn - on_load - on_demand)}: add them to lts_web/frontend/plotly/entry.js")


def test_static_assets_are_served(client, actors):
    client.force_login(actors.bob)
    for path in (*(f"/static/plotly/{name}" for name in _plotly_files()),
                 *(f"/static/searches/detail/{name}.js" for name in ("main", "store", "charts", "table")),
                 "/static/searches/new.js", "/static/searches/common.js", "/static/lts_web/style.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content)


@pytest.mark.parametrize("who, actions", [("bob", True), ("alice", True), ("bob_teammate_member", False)])
def test_change_actions_only_for_owner_or_team_admin(client, actors, device, no_messages, who, actions):
    from django.contrib.auth import get_user_model

    from lts_web.models import Membership
    from lts_web.services import do_add_member

    job = services.do_create_search(owner=actors.bob, team=actors.acme, name="x", spec=spec())
    user = getattr(actors, who, None)
    if user is None:  # a plain member who does not own the job
        user = get_user_model().objects.create_user("dave", password="dave-password-1")
        do_add_member(actors.acme, user, Membership.Role.MEMBER)
    page = _get(client, user, f"/searches/{job.pk}/").content.decode()
    assert ('data-action="cancel"' in page) is actions and ('data-action="pause"' in page) is actions
    assert 'data-action="clone"' in page  # any member may clone
    assert f'"can_change": {"true" if actions else "false"}' in page


def test_compare_menu_lists_only_visible_searches(client, actors, finished_job, device, no_messages):
    mine = services.do_create_search(owner=actors.alice, team=actors.acme, name="twin on acme", spec=spec())
    theirs = services.do_create_search(owner=actors.charlie, team=actors.other, name="hidden", spec=spec())
    page = _get(client, actors.bob, f"/searches/{finished_job.pk}/").content.decode()
    compare = re.search(r'<select id="compare">(.*?)</select>', page, re.S).group(1)
    assert f'value="{mine.pk}"' in compare and f'value="{theirs.pk}"' not in compare
    assert f'value="{finished_job.pk}"' not in compare


# ---- candidate detail -----------------------------------------------------------------------------------------------

def test_candidate_page_shows_config_measurements_and_lineage(client, actors, finished_job, device):
    child = finished_job.candidates.exclude(parents=[]).order_by("-generation").first()
    assert child is not None, "the evolution made no mutation or crossover"
    other = Device.objects.create(name="jetson-2", last_heartbeat=timezone.now())
    Measurement.objects.create(archid=child.archid, config=child.config, device=other, backend="onnxruntime",
                               batch_size=1, seq_len=32, threads=4, mode="prefill", dtype="float32", status="done",
                               latency_median_s=0.00123, peak_memory_mb=77.5)
    page = _get(client, actors.alice, f"/searches/{finished_job.pk}/candidates/{child.archid}/").content.decode()
    assert child.archid in page and f"{child.non_embedding_params:,}" in page and f"{child.total_params:,}" in page
    for key, value in child.config.items():
        assert f"<th>{key}</th><td class=\"num\">{value}</td>" in page
    assert "jetson-2" in page and "onnxruntime" in page and "77.5 MB" in page and "edge-1" in page
    for parent in child.parents:
        assert f'href="/searches/{finished_job.pk}/candidates/{parent}/"' in page
    assert f"<td>{child.origin}</td>" in page


def test_the_candidate_page_numbers_generations_from_1_as_the_search_page(client, actors, finished_job, device):
    """The field counts from 0 (the API and the exports give it so); the pages number generations 1 to N, as the
    search's header ("generation 3/3") and its hypervolume chart do."""
    first = finished_job.candidates.filter(generation=0).first()
    child = finished_job.candidates.exclude(parents=[]).order_by("-generation").first()
    other = services.do_create_search(owner=actors.bob, team=actors.acme, name="other", spec=spec())
    Candidate.objects.create(job=other, archid=first.archid, config=first.config, generation=4, position=0,
                             origin="mutation", n_layer=first.n_layer, d_model=first.d_model, d_inner=first.d_inner,
                             n_head=first.n_head, non_embedding_params=first.non_embedding_params,
                             total_params=first.total_params)
    page = _get(client, actors.alice, f"/searches/{finished_job.pk}/candidates/{first.archid}/").content.decode()
    assert '<tr><th>generation</th><td class="num">1</td></tr>' in page
    assert "generation 5, measuring" in page  # the same architecture in the other search, its 5th generation
    page = _get(client, actors.alice, f"/searches/{finished_job.pk}/candidates/{child.archid}/").content.decode()
    assert f'<tr><th>generation</th><td class="num">{child.generation + 1}</td></tr>' in page
    parent = finished_job.candidates.get(archid=child.parents[0])
    assert f"generation {parent.generation + 1}, {parent.origin}" in page
    assert finished_job.generation == 3 and child.generation == 2  # the last of 3 generations: numbered 3


def test_the_candidate_page_numbers_positions_from_1_as_generations(client, actors, api_client, finished_job):
    """Position 1 of generation 1 on the page; the field (the API, the exports) counts from 0 as the generation."""
    first = finished_job.candidates.get(generation=0, position=0)
    last = finished_job.candidates.filter(generation=0).order_by("-position").first()
    page = _get(client, actors.alice, f"/searches/{finished_job.pk}/candidates/{first.archid}/").content.decode()
    assert '<tr><th>position</th><td class="num">1</td></tr>' in page
    assert first.position_number == 1 and last.position_number == last.position + 1 > 1
    page = _get(client, actors.alice, f"/searches/{finished_job.pk}/candidates/{last.archid}/").content.decode()
    assert f'<tr><th>position</th><td class="num">{last.position + 1}</td></tr>' in page
    api_client.force_authenticate(actors.alice)
    rows = api_client.get(f"/api/v1/candidates/?job={finished_job.pk}&limit=1000").json()["results"]
    assert {(r["archid"], r["generation"], r["position"]) for r in rows} >= {(first.archid, 0, 0)}


# ---- devices --------------------------------------------------------------------------------------------------------

def test_devices_page_shows_state_and_queue(client, actors, device, no_messages):
    Device.objects.create(name="old-box", last_heartbeat=timezone.now() - timezone.timedelta(hours=2),
                          hardware={"cpu_model": "Old CPU", "ram_mb": 2048}, backends=["torch", "onnxruntime"])
    services.do_create_search(owner=actors.bob, team=actors.acme, name="waits", spec=spec())
    page = _get(client, actors.bob, "/devices/").content.decode()
    edge = re.search(r"<strong>edge-1</strong>(.*?)</tr>", page, re.S).group(1)
    old = re.search(r"<strong>old-box</strong>(.*?)</tr>", page, re.S).group(1)
    assert "online" in edge and 'class="num">0</td>' in edge and 'class="num">1</td>' in edge  # queue 0, 1 search
    assert "offline" in old and "Old CPU" in old and "torch, onnxruntime" in old and "2\xa0hours ago" in old


# ---- the new search form --------------------------------------------------------------------------------------------

# Every key the API answers a bad spec with (tests/searches/test_api.py) has its place next to a field.
API_ERROR_KEYS = ["name", "team", "preset", "space", "space.n_layer", "space.d_model", "space.d_inner", "space.n_head",
                  "space.vocab_size", "space.max_sequence_length", "space.dropatt", "objectives", "constraints",
                  "constraints.min_proxy", "constraints.max_proxy", "constraints.max_latency",
                  "constraints.max_memory", "device", "profiling", "profiling.backend", "profiling.batch_size",
                  "profiling.seq_len", "profiling.threads", "profiling.mode", "profiling.dtype", "profiling.device",
                  "profiling.rel_tolerance", "profiling.min_repeats", "profiling.max_repeats",
                  "profiling.max_seconds", "profiling.host_tolerance", "profiling.host_wait_s", "algorithm", "params", "params.init_population",
                  "params.mutations_per_parent", "params.num_crossovers", "params.num_random_mix",
                  "params.max_unseen", "params.mutation_prob", "params.exploration", "params.batch",
                  "params.min_gain", "measure", "budget",
                  "budget.generations", "budget.max_candidates", "budget.max_hardware_seconds", "seed",
                  "non_field_errors"]


def test_new_search_form_has_an_error_place_for_every_api_field(client, actors, device):
    page = _get(client, actors.bob, "/searches/new/").content.decode()
    places = set(re.findall(r'data-error-for="([^"]+)"', page))
    assert set(API_ERROR_KEYS) <= places, set(API_ERROR_KEYS) - places
    # each field's input carries the same dotted name the body is built from
    for key in API_ERROR_KEYS:
        if "." in key:
            assert f'name="{key}"' in page, key
    # The defaults: measure what the cost model picks, scoring the whole space.
    assert re.search(r'<select id="f-measure" name="measure" data-kind="text"><option value="predicted" selected>',
                     page)
    assert re.search(r'<select id="f-algorithm" name="algorithm" data-kind="text"><option value="scored" selected[ >]',
                     page)
    assert 'value="edge-1" checked' in page and "Test CPU" in page  # the online device is preselected
    assert '"name": "gpt2-lts"' in page and '"name": "tiny"' in page  # presets with their space for the editor
    assert 'data-create-url="/api/v1/searches/"' in page and 'data-preview-url="/api/v1/spaces/preview/"' in page
    # profiling fields carry the defaults, and a label that says what they do where the name does not
    assert re.search(r'<label for="f-profiling.host_wait_s" title="[^"]*0: no check">host wait \(s\)</label>'
                     r'<input id="f-profiling.host_wait_s" name="profiling.host_wait_s" type="number" '
                     r'data-kind="float" value="20.0"', page)
    assert '>untimed runs</label><input id="f-profiling.warmup" name="profiling.warmup" type="number" ' \
           'data-kind="int" value="1"' in page


def test_new_search_form_names_its_parameters_for_the_algorithm_and_shows_them_all_without_script(client, actors,
                                                                                                    device):
    page = _get(client, actors.bob, "/searches/new/").content.decode()
    assert "<summary>Algorithm parameters " in page and "Evolution parameters" not in page
    # the script hides those the chosen algorithm does not read; the page alone shows every one
    details = page[page.index("<details>"):page.index("</details>")]
    assert "hidden" not in details
    for key in ("batch", "min_gain", "exploration", "init_population", "mutation_prob", "max_unseen"):
        assert f'name="params.{key}"' in details, key


@pytest.mark.parametrize("change, key", [
    ({"profiling": {"seq_len": 4096}}, "profiling.seq_len"),
    ({"space": {"n_layer": [1], "d_model": [96], "d_inner": [64], "n_head": [5]}}, "space.n_head"),
    ({"params": {"init_population": 0}}, "params.init_population"),
    ({"budget": {"generations": 0}}, "budget.generations"),
])
def test_api_errors_are_keyed_like_the_form_fields(client, actors, device, change, key):
    """What the page's script does with a 400: each key names a data-error-for place on the form."""
    client.force_login(actors.bob)
    places = set(re.findall(r'data-error-for="([^"]+)"', client.get("/searches/new/").content.decode()))
    body = {"name": "bad", "preset": "tiny", "device": "edge-1", **change}
    if "space" in change:
        body.pop("preset")
    response = client.post("/api/v1/searches/", body, content_type="application/json")
    assert response.status_code == 400
    assert key in response.json() and set(response.json()) <= places, response.json()


def test_session_post_without_csrf_token_is_refused(actors, device):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(actors.bob)
    response = client.post("/api/v1/searches/", {"name": "x", "preset": "tiny", "device": "edge-1"},
                           content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


# ---- the points endpoint (first load of the detail page) ------------------------------------------------------------

def test_points_are_the_candidates_as_columns(api_client, actors, finished_job, django_assert_max_num_queries):
    api_client.force_authenticate(actors.alice)
    with django_assert_max_num_queries(3):
        body = api_client.get(f"/api/v1/searches/{finished_job.pk}/points/").json()
    rows = api_client.get(f"/api/v1/candidates/?job={finished_job.pk}&limit=1000").json()["results"]
    columns = body["columns"]
    assert body["revision"] == finished_job.revision and len(columns["id"]) == len(rows) == finished_job.counts["candidates"]
    for i, row in enumerate(rows):
        for name, values in columns.items():
            expected = row["config"][name] if name in ("vocab_size", "max_sequence_length") else row[name]
            assert values[i] == expected, name
    assert api_client.get(f"/api/v1/searches/{finished_job.pk}/points/").status_code == 200
    api_client.force_authenticate(actors.charlie)
    assert api_client.get(f"/api/v1/searches/{finished_job.pk}/points/").status_code == 404


def test_points_of_an_empty_search(api_client, actors, device, no_messages):
    job = services.do_create_search(owner=actors.bob, team=actors.acme, name="empty", spec=spec())
    api_client.force_authenticate(actors.bob)
    body = api_client.get(f"/api/v1/searches/{job.pk}/points/").json()
    assert body["revision"] == 0 and body["columns"]["id"] == [] and body["columns"]["latency_s"] == []
    assert SearchJob.objects.get(pk=job.pk).status == "queued"


def test_live_poll_sends_only_the_hypervolumes_the_page_lacks(api_client, actors, finished_job):
    api_client.force_authenticate(actors.bob)
    url = f"/api/v1/candidates/?job={finished_job.pk}&after={finished_job.revision}"
    whole = api_client.get(url).json()["job"]
    assert len(whole["hypervolumes"]) == 3 and "hypervolumes_from" not in whole
    tail = api_client.get(url + "&hypervolumes_from=2").json()["job"]
    assert tail["hypervolumes"] == whole["hypervolumes"][2:] and tail["hypervolumes_from"] == 2
    assert api_client.get(url + "&hypervolumes_from=3").json()["job"]["hypervolumes"] == []
    assert api_client.get(url + "&hypervolumes_from=x").status_code == 400


def test_frontier_candidates_link_to_the_training_form(client, actors, finished_job):
    detail = _get(client, actors.bob, f"/searches/{finished_job.pk}/").content.decode()
    assert 'id="train-frontier"' in detail and 'data-train-url="/zoo/train/"' in detail
    pareto = finished_job.candidates.filter(is_pareto=True).first()
    page = _get(client, actors.bob, f"/searches/{finished_job.pk}/candidates/{pareto.archid}/").content.decode()
    assert f'href="/zoo/train/?candidate={pareto.id}"' in page
    form = _get(client, actors.bob, f"/zoo/train/?candidate={pareto.id}").content.decode()
    assert pareto.archid in form or str(pareto.id) in form
