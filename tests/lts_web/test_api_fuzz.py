"""Schema-driven fuzz of the REST API: schemathesis generates requests for every operation of /api/schema/ (valid
and invalid ones) and sends them to the WSGI application in-process (no server, no network), authenticated by token
as bob, a member of team "acme". Two checks on every response: no 5xx, and the body of a documented status matches
its declared schema.

Path ids name real objects of bob's team in about half of the examples (else a generated id, mostly a 404): a keeper
of each kind for reads, and throwaways for what ends an object (cancel, pause, resume, retry) and for DELETE, so that
the keeper is still there for the operations that come after them.

Nothing needs a worker: the test's transaction never commits, so no task is sent (every dispatch waits for the commit),
and the zoo models have no tokenizer, so generate and generate/stream answer before a `generate` worker would be asked
(a 400 about the tokenizer, after every check of the body). Only their 200 bodies, which a worker produces, are not
checked here (tests/models_zoo/test_generation_api.py runs a worker).
"""
from __future__ import annotations

import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.models_zoo.conftest import TINY_ARCH, make_checkpoint
from tests.models_zoo.core.conftest import write_corpus
from tests.models_zoo.proxy_checks.conftest import TINY_CONFIG, TINY_SPACE
from tests.searches.factories import FAST_PROFILING, SMALL_SPACE, measured, run_job

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# Examples per operation: 37 operations in ~60 s on 2 cores.
EXAMPLES = 25
# What ends the object its path names: these get the "end" throwaway, DELETE the "delete" one.
_ENDING = ("/cancel/", "/pause/", "/resume/", "/retry/")


@pytest.fixture
def world(settings, tmp_path, monkeypatch):
    """bob's team with a finished search (candidates, measurements, a device with enough measurements of the
    default profiling settings for a cost model) and a running one (candidates not yet
    measured), datasets, training runs, zoo models and proxy checks: {kind: {"read"|"end"|"delete": id}}."""
    from django.contrib.auth import get_user_model
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from knox.models import AuthToken

    from lts_web.models import Membership
    from lts_web.services import do_add_member, do_create_team
    from models_zoo import services as zoo
    from models_zoo.proxy_checks import services as checks
    from notifications.models import Webhook
    from searches import services as searches
    from searches.models import Device
    from searches.specs import normalize_spec

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LTS_DATA_ROOT = tmp_path / "data"
    settings.LTS_ARTIFACT_ROOT = tmp_path / "artifacts"
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    write_corpus(tmp_path / "data" / "corpora" / "kings.txt")
    make_checkpoint(tmp_path / "data" / "gallery" / "tiny")

    User = get_user_model()
    alice, bob = User.objects.create_user("alice", password="a"), User.objects.create_user("bob", password="b")
    acme = do_create_team("acme", alice)
    do_add_member(acme, bob, Membership.Role.MEMBER)
    device = Device.objects.create(name="edge-1", backends=["torch"], hardware={"cpu_model": "Test CPU"})
    measured(device, 20)  # the default profiling settings' key: predict answers 200 (its schema's example), not 409

    def search(name: str, steps: int = 0, **profiling):
        spec = normalize_spec({"space": SMALL_SPACE, "device": "edge-1", "profiling": {**FAST_PROFILING, **profiling},
                               "seed": 7, "params": {"init_population": 6, "num_crossovers": 2, "num_random_mix": 2},
                               "budget": {"generations": 2}})
        job = searches.do_create_search(owner=bob, team=acme, name=name, spec=spec)
        for _ in range(steps):
            searches.do_advance_search(job.pk)  # the first generation, its measurements pending
        return job

    keeper = search("keeper")
    run_job(keeper)
    dataset, spare = (zoo.do_register_dataset(owner=bob, team=acme, name=name, kind="folder", path="corpora/kings.txt")
                      for name in ("kings", "spare"))

    def run():
        return zoo.do_start_training(owner=bob, team=acme, dataset=dataset, tokenizer="bpe:300",
                                     config={"max_steps": 2, "seq_len": 32}, architecture=TINY_ARCH)

    def check():
        return checks.do_create_proxy_check(owner=bob, team=acme, dataset=dataset, tokenizer="bpe:300",
                                            max_tokens=512, sample_size=4, space=TINY_SPACE, config=TINY_CONFIG)

    def webhook():  # written directly: its host is not resolved here (generated bodies resolve theirs)
        return Webhook.objects.create(team=acme, owner=bob, url="https://hooks.example.com/in", events=["search.failed"]).pk

    finished_check = check()
    checks.do_cancel_proxy_check(finished_check)  # deletable
    models = [zoo.do_import_model(owner=bob, team=acme, source="gallery/tiny").pk for _ in range(2)]
    running = search("running", steps=1, seq_len=16)  # not the keeper's measurements (the cache's key)
    objects = {
        "searches": {"read": keeper.pk, "end": running.pk, "delete": search("throwaway").pk},
        "candidates": {"read": running.candidates.first().pk},  # not measured yet: no latency, no memory
        "measurements": {"read": keeper.candidates.exclude(measurement=None).first().measurement_id},
        "devices": {"read": "edge-1"},
        "teams": {"read": acme.pk},
        "datasets": {"read": dataset.pk, "delete": spare.pk},
        "training-runs": {"read": run().pk, "end": run().pk},
        "zoo-models": {"read": models[0], "delete": models[1]},
        "models": {"read": models[0]},  # generate
        "proxy-checks": {"read": check().pk, "end": check().pk, "delete": finished_check.pk},
        "webhooks": {"read": webhook(), "delete": webhook()},
    }
    token = AuthToken.objects.create(user=bob)[1]
    # The requests run in this thread on the test's connection: Django's request signals would close it (and the
    # test's transaction with it) after each one, as django.test.Client also prevents.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"objects": objects, "token": token}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _real_ids(case, objects) -> None:
    """The path's id becomes that of the object of its kind for this operation."""
    path = case.operation.path
    ids = objects.get(path.removeprefix("/api/v1/").split("/", 1)[0])
    role = "delete" if case.method.upper() == "DELETE" else "end" if path.endswith(_ENDING) else "read"
    if ids is None or role not in ids:
        return
    for name in ("id", "name"):
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = ids[role]


def test_no_server_error_and_every_response_as_documented(world):
    # schemathesis' pytest plugin (schema.parametrize) does not run on pytest 9 (it sets Function._nodeid): each
    # operation gets its own Hypothesis test here, and every operation's failures are reported at the end.
    from lts_web.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    headers = {"Authorization": f"Token {world['token']}"}
    settings = hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                   suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    failures: list[str] = []

    def check(case):
        if zlib.crc32(repr(case.path_parameters).encode()) % 2:  # half of them, the same ones on every run
            _real_ids(case, world["objects"])
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    for result in schema.get_all_operations():
        operation = result.ok()
        # The coverage phase (explicit examples at the schema's edges: bounds, types, missing and extra fields),
        # then EXAMPLES generated ones, valid and invalid.
        fuzz = create_test(operation=operation, test_func=check, config=HypothesisTestConfig(
            project=schema.config, modes=[HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING],
            settings=settings))
        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (every operation's failures, not the first)
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
