"""REST API under /api/v1/: searches, candidates, frontier, exports, measurements, devices and their cost models,
presets, previews."""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import IntegerField, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from lts_web.models import Team
from lts_web.pagination import LimitOffsetPagination
from lts_web.params import BadQuery, query_id, query_int
from lts_web.parsers import JSONParser
from lts_web.throttling import PredictThrottle, StartWorkThrottled
from searches import services
from searches.core.arch import Architecture, ConfigError
from searches.core.cli import arch_record
from searches.core.cost_model import MIN_OBSERVATIONS
from searches.core.pareto import OBJECTIVES, pareto_front
from searches.core.space import PRESETS
from searches.filters import CandidateFilter, MeasurementFilter
from searches.models import Candidate, Device, Measurement, SearchJob
from searches.permissions import CanChangeSearch, can_change, visible_searches
from searches.queues import queue_lengths
from searches.serializers import (
    CandidateSerializer,
    CloneSerializer,
    CostModelSerializer,
    DeviceSerializer,
    FrontierSerializer,
    MeasurementSerializer,
    PredictorKeySerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
    PresetSerializer,
    SearchCreateSerializer,
    SearchJobSerializer,
    SpacePreviewSerializer,
    SpaceSummarySerializer,
    TooFewMeasurementsSerializer,
)

# One live poll returns at most this many changed candidates; a client that is further behind reloads by pages.
POLL_MAX_ROWS = 20_000


# What the candidate serializer reads: loading whole Measurement rows (their details JSON holds every latency sample)
# made a 1,000-row response spend 140 ms building model instances.
CANDIDATE_FIELDS = ("id", "job_id", "archid", "config", "generation", "position", "origin", "parents", "n_layer",
                    "d_model", "d_inner", "n_head", "non_embedding_params", "total_params", "status", "feasible",
                    "is_pareto", "measurement_id", "cache_hit", "revision", "measurement__latency_median_s",
                    "measurement__peak_memory_mb", "predicted")


def candidate_rows() -> QuerySet[Candidate]:
    return Candidate.objects.select_related("measurement").only(*CANDIDATE_FIELDS)


def with_related(queryset: QuerySet[SearchJob]) -> QuerySet[SearchJob]:
    return queryset.select_related("owner", "team", "device")


class SearchJobViewSet(StartWorkThrottled, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Search jobs of your teams. Changes (cancel, pause, resume, retry, delete) need the owner or a team admin."""

    serializer_class = SearchJobSerializer
    queryset = SearchJob.objects.none()  # for the schema; get_queryset scopes to the caller's teams
    permission_classes = [IsAuthenticated, CanChangeSearch]
    filterset_fields = ["status", "team"]
    start_work_actions = ("create", "clone", "retry")

    def get_queryset(self):
        queryset = with_related(visible_searches(self.request.user)).order_by("-created_at")
        owner = self.request.query_params.get("owner")
        return queryset.filter(owner__username=owner) if owner else queryset

    @extend_schema(request=SearchCreateSerializer, responses={201: SearchJobSerializer})
    def create(self, request, *args, **kwargs):
        serializer = SearchCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.do_create_search(owner=request.user, team=Team.objects.get(pk=data["team_id"]),
                                        name=data["name"], spec=data["spec"])
        return Response(self._one(job.pk), status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: SearchJob) -> None:
        services.do_delete_search(instance)

    def _one(self, pk: int) -> dict[str, Any]:
        return SearchJobSerializer(with_related(SearchJob.objects.filter(pk=pk)).get()).data

    def _transition(self, change: Callable[[SearchJob], object]):
        """Apply a service's change to the job and answer with it (a refused change raises Conflict: 409)."""
        job = self.get_object()
        change(job)
        return Response(self._one(job.pk))

    @extend_schema(request=None, responses={200: SearchJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._transition(services.do_cancel_search)

    @extend_schema(request=None, responses={200: SearchJobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._transition(services.do_pause_search)

    @extend_schema(request=None, responses={200: SearchJobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._transition(services.do_resume_search)

    @extend_schema(request=None, responses={200: SearchJobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Measure the failed candidates again."""
        return self._transition(services.do_retry_failed)

    @extend_schema(request=CloneSerializer, responses={201: SearchJobSerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        """A new search with the same spec, owned by you, in the same team."""
        serializer = CloneSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.do_clone_search(self.get_object(), owner=request.user, name=serializer.validated_data.get("name"))
        return Response(self._one(job.pk), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("objectives", str, description="2 or 3 of proxy,latency,memory "
                                                                                 "(default: the job's)")],
                   responses={200: FrontierSerializer})
    @action(detail=True, methods=["get"])
    def frontier(self, request, pk=None):
        """The non-dominated measured, feasible candidates over the chosen objectives, best first-objective first."""
        job = self.get_object()
        raw = request.query_params.get("objectives")
        names = [n.strip() for n in raw.split(",")] if raw else job.objectives
        if not 1 <= len(names) <= 3 or len(set(names)) != len(names) or not set(names) <= set(OBJECTIVES):
            raise ValidationError({"objectives": f"choose 1 to 3 distinct of {', '.join(OBJECTIVES)}"})
        if {"latency", "memory"} & set(names) and not job.needs_hardware:
            raise ValidationError({"objectives": "this search measured no latency or memory"})
        if request.accepted_renderer.format != "json":  # the browsable API
            return Response(_frontier_payload(job, names))
        # The JSON body is cached per job revision: polling clients share one rendering until the job changes (a
        # 1,071-row frontier is 579 kB, ~57 ms to build and render, ~2 ms from the cache).
        key = f"frontier-body:{job.pk}:{job.revision}:{','.join(names)}"
        body = cache.get(key)
        if body is None:
            body = JSONRenderer().render(_frontier_payload(job, names))
            cache.set(key, body, timeout=3600)
        return HttpResponse(body, content_type="application/json")

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def points(self, request, pk=None):
        """Every candidate as columns, one list per field in generation order, and the revision to poll after
        (candidates/?job=ID&after=revision): the dashboard's first load of a search. No model instances and no
        config documents: 100,000 candidates take ~1.1 s and 17 MB, against ~7 s and 60 MB as 20,000-row pages."""
        job = self.get_object()
        rows = (job.candidates.annotate(**_CONFIG_INTEGERS).order_by("generation", "position")
                .values_list(*POINT_COLUMNS.values()))
        columns = list(zip(*rows)) or [()] * len(POINT_COLUMNS)
        return Response({"revision": job.revision,
                         "columns": {name: list(values) for name, values in zip(POINT_COLUMNS, columns)}})

    @extend_schema(parameters=[OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=["csv", "json"])],
                   responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path=r"export\.(?P<fmt>csv|json)")
    def export(self, request, pk=None, fmt="csv"):
        """Every candidate with its measurement, one row each (like the reference's search state file)."""
        job = self.get_object()
        rows = job.candidates.select_related("measurement").order_by("generation", "position").iterator(2000)
        response = StreamingHttpResponse(
            _csv_rows(job, rows) if fmt == "csv" else _json_rows(job, rows),
            content_type="text/csv" if fmt == "csv" else "application/json",
        )
        response["Content-Disposition"] = f'attachment; filename="search-{job.pk}-candidates.{fmt}"'
        return response


# The points of a search (column name -> model field): the candidate serializer's names, so that a client merges
# polled rows into the columns without renaming.
POINT_COLUMNS = {"id": "id", "archid": "archid", "generation": "generation", "origin": "origin", "n_layer": "n_layer",
                 "d_model": "d_model", "d_inner": "d_inner", "n_head": "n_head", "vocab_size": "vocab_size",
                 "max_sequence_length": "max_sequence_length", "proxy": "non_embedding_params",
                 "total_params": "total_params", "latency_s": "measurement__latency_median_s",
                 "memory_mb": "measurement__peak_memory_mb", "status": "status", "feasible": "feasible",
                 "is_pareto": "is_pareto", "predicted": "predicted"}

# Read as integers by the database: decoding two JSON values per row in Python took 0.28 s of 0.70 s for 100,000
# candidates on PostgreSQL.
POINT_COLUMNS_FROM_CONFIG = ("vocab_size", "max_sequence_length")  # in a polled candidate's "config"
_CONFIG_INTEGERS = {key: Cast(KeyTextTransform(key, "config"), IntegerField()) for key in POINT_COLUMNS_FROM_CONFIG}

_COLUMNS = {"proxy": "non_embedding_params", "latency": "measurement__latency_median_s",
            "memory": "measurement__peak_memory_mb"}


def _frontier_payload(job: SearchJob, names: list[str]) -> dict[str, Any]:
    ids = frontier_ids(job, names)
    rows = candidate_rows().in_bulk(ids)
    return {"objectives": names, "revision": job.revision,
            "results": CandidateSerializer([rows[i] for i in ids], many=True).data}


def frontier_ids(job: SearchJob, names: list[str]) -> list[int]:
    """Ids of the non-dominated measured, feasible candidates over ``names``, best first objective first.

    The job's own objectives are maintained in is_pareto; other combinations are computed from the raw columns
    (no model instances: 100,000 candidates take ~0.3 s) and cached per job revision, so polling clients share one
    computation until the job changes.
    """
    key = f"frontier:{job.pk}:{job.revision}:{','.join(names)}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = job.candidates.filter(status=Candidate.Status.MEASURED, feasible=True)
    if names == job.objectives:
        rows = rows.filter(is_pareto=True)
    values = list(rows.values_list("id", *[_COLUMNS[n] for n in names]))
    ids: list[int] = []
    if values:
        points = np.asarray([v[1:] for v in values], dtype=float)
        ids = [values[i][0] for i in pareto_front(points, [OBJECTIVES[n] for n in names])]
    cache.set(key, ids, timeout=3600)
    return ids


EXPORT_COLUMNS = ["archid", "generation", "position", "origin", "parents", "n_layer", "d_model", "d_inner", "n_head",
                  "vocab_size", "max_sequence_length", "non_embedding_params", "total_params", "status", "feasible",
                  "is_pareto", "latency_median_s", "latency_p10_s", "latency_p90_s", "latency_n", "peak_memory_mb",
                  "param_bytes", "onnx_file_bytes", "device", "backend", "batch_size", "seq_len", "threads", "mode",
                  "dtype", "cache_hit"]


def _export_row(c: Candidate, device: str | None) -> dict[str, Any]:
    m = c.measurement
    row: dict[str, Any] = {
        "archid": c.archid, "generation": c.generation, "position": c.position, "origin": c.origin,
        "parents": " ".join(c.parents), "n_layer": c.n_layer, "d_model": c.d_model, "d_inner": c.d_inner,
        "n_head": c.n_head, "vocab_size": c.config.get("vocab_size"),
        "max_sequence_length": c.config.get("max_sequence_length"), "non_embedding_params": c.non_embedding_params,
        "total_params": c.total_params, "status": c.status, "feasible": c.feasible, "is_pareto": c.is_pareto,
        "cache_hit": c.cache_hit,
    }
    for name in ("latency_median_s", "latency_p10_s", "latency_p90_s", "latency_n", "peak_memory_mb", "param_bytes",
                 "onnx_file_bytes", "backend", "batch_size", "seq_len", "threads", "mode", "dtype"):
        row[name] = getattr(m, name) if m else None
    row["device"] = device if m else None
    return row


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(job: SearchJob, rows: Iterator[Candidate]) -> Iterator[str]:
    device = job.device.name if job.device else None
    writer = csv.DictWriter(_Echo(), fieldnames=EXPORT_COLUMNS)
    yield writer.writeheader()
    for c in rows:
        yield writer.writerow(_export_row(c, device))


def _json_rows(job: SearchJob, rows: Iterator[Candidate]) -> Iterator[str]:
    head = {"search": {"id": job.pk, "name": job.name, "spec": job.spec, "status": job.status,
                       "hypervolumes": job.hypervolumes}}
    yield json.dumps(head)[:-1] + ', "candidates": ['
    device = job.device.name if job.device else None
    for i, c in enumerate(rows):
        yield ("," if i else "") + json.dumps(_export_row(c, device))
    yield "]}"


class KeysFirstPagination(LimitOffsetPagination):
    """Slices primary keys first, then loads that page's rows: a deep offset then walks the (job, generation,
    position) index instead of building 50,000 joined rows (230 ms at offset 50,000 of 100,000 on PostgreSQL).
    Pages of up to POLL_MAX_ROWS: a client further behind than one live poll reloads by pages of that size."""

    max_limit = POLL_MAX_ROWS

    def paginate_queryset(self, queryset, request, view=None):
        self._read(request)
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        known = getattr(view, "known_count", None)
        self.count = known if known is not None else self.get_count(queryset)
        self.offset = self.get_offset(request)
        if self.count == 0 or self.offset > self.count:
            return []
        ids = list(queryset.values_list("pk", flat=True)[self.offset:self.offset + self.limit])
        rows = queryset.order_by().in_bulk(ids)
        return [rows[i] for i in ids]


class CandidateViewSet(viewsets.ReadOnlyModelViewSet):
    """Candidates of your teams' searches. Filter by job, pareto, feasibility, parameter and objective ranges;
    order with ?ordering=proxy|-latency|...; with ?job=ID&after=REVISION only what changed since that revision
    (the live poll of the dashboard), plus the job's state and the next cursor."""

    serializer_class = CandidateSerializer
    filterset_class = CandidateFilter
    pagination_class = KeysFirstPagination
    queryset = Candidate.objects.none()  # for the schema; get_queryset scopes to the caller's teams

    known_count: int | None = None  # the page count when the job row already holds it (KeysFirstPagination)
    # Parameters that select no subset of a job's candidates: with only these, django-filter has nothing to do.
    _UNFILTERED = {"job", "limit", "offset", "ordering", "format", "after", "hypervolumes_from"}

    def _whole_job(self) -> bool:
        return "job" in self.request.query_params and set(self.request.query_params) <= self._UNFILTERED

    def get_queryset(self):
        rows = candidate_rows().order_by("job_id", "generation", "position")
        job = query_id(self.request.query_params, "job")
        if job is not None:
            # One small visibility check, then an index-only filter on job_id: joining teams and memberships into
            # every page of 100,000 candidates made PostgreSQL skip the (job, generation, position) index.
            counts = visible_searches(self.request.user).filter(pk=job).values_list("counts", flat=True).first()
            if counts is None:
                return rows.none()
            if self._whole_job():
                # All of the job's candidates: their number is on the job row, kept in the same transaction that
                # inserts them (COUNT over 100,000 rows took 24 of a page's 60 ms on PostgreSQL).
                self.known_count = counts.get("candidates")
            return rows.filter(job_id=job)
        return rows.filter(job__team__in=Team.objects.filter(memberships__user=self.request.user))

    def filter_queryset(self, queryset):
        if self._whole_job() and "ordering" not in self.request.query_params:
            return queryset  # only the job, applied already: django-filter's form would cost 9 of a page's 20 ms
        return super().filter_queryset(queryset)

    @extend_schema(parameters=[
        OpenApiParameter("after", int, description="only candidates changed after this job revision (needs job)"),
        OpenApiParameter("hypervolumes_from", int, description="with after: the job's hypervolumes from this index "
                                                               "on (the client has the earlier ones)"),
    ])
    def list(self, request, *args, **kwargs):
        query = request.query_params
        if not query.get("after"):
            return super().list(request, *args, **kwargs)
        errors: dict[str, str] = {}
        after_revision = query_int(query, "after", errors=errors)
        job_id = query_id(query, "job", errors=errors)
        hypervolumes_from = query_int(query, "hypervolumes_from", errors=errors) or 0
        if job_id is None and "job" not in errors:
            errors["job"] = "the after cursor needs a job"
        if errors:
            raise BadQuery(errors)
        job = get_object_or_404(with_related(visible_searches(request.user)), pk=job_id)
        revision = job.revision  # read first: rows committed later carry higher revisions and come next time
        changed = (self.filter_queryset(candidate_rows().filter(job_id=job.pk))  # visible: the job was found
                   .filter(revision__gt=after_revision, revision__lte=revision).order_by("revision", "id"))
        rows = list(changed[: POLL_MAX_ROWS + 1])
        state = SearchJobSerializer(job).data
        if hypervolumes_from > 0:
            # The history only grows (one entry per generation): a live client asks for what it lacks, so that a
            # poll of a 1,000-generation search does not resend ~120 kB of it every second and a half.
            state["hypervolumes"] = state["hypervolumes"][hypervolumes_from:]
            state["hypervolumes_from"] = hypervolumes_from
        return Response({
            "job": state, "next_after": revision, "truncated": len(rows) > POLL_MAX_ROWS,
            "results": CandidateSerializer(rows[:POLL_MAX_ROWS], many=True).data,
        })


    @extend_schema(request=None, responses={200: CandidateSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def measure(self, request, pk=None):
        """Measure a predicted candidate (measure "predicted") on the search's device; the owner of the search or an
        admin of its team, as for retry (it spends device time). 409 when the candidate is not predicted."""
        candidate = self.get_object()
        job = SearchJob.objects.only("owner_id", "team_id").get(pk=candidate.job_id)
        if not can_change(request.user, job):
            raise PermissionDenied(CanChangeSearch.message)
        services.do_measure_candidate(candidate)
        return Response(CandidateSerializer(candidate_rows().get(pk=candidate.pk)).data)


class MeasurementViewSet(viewsets.ReadOnlyModelViewSet):
    """The shared measurement cache (every device, every job)."""

    serializer_class = MeasurementSerializer
    filterset_class = MeasurementFilter
    queryset = Measurement.objects.select_related("device").order_by("-id")


_DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    """Target devices: each has a profiling worker consuming profile.<name>. Devices serve every team: any signed-in
    user reads them and asks their cost models for predictions."""

    serializer_class = DeviceSerializer
    queryset = Device.objects.order_by("name")
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9][a-z0-9_.-]{0,62}"  # DEVICE_NAME_VALIDATOR's names: the router's default stops at '.'

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action in ("list", "retrieve"):
            devices = list(self.filter_queryset(self.get_queryset()))
            context["queue_lengths"] = queue_lengths(devices)
        return context

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action == "predict":
            throttles.append(PredictThrottle())
        return throttles

    @extend_schema(
        request=PredictRequestSerializer,
        responses={200: PredictResponseSerializer, 400: OpenApiTypes.OBJECT, 404: _DETAIL,
                   409: TooFewMeasurementsSerializer},
        examples=[OpenApiExample("one architecture, default profiling settings", request_only=True, value={
            "architectures": [{"n_layer": 4, "d_model": 256, "d_inner": 1024, "n_head": 4}], "profiling": {}})],
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def predict(self, request, name=None):
        """Predicted latency (s) and peak memory (MB), each with a 90% interval, of up to 1,000 architectures on this
        device under these profiling settings, from the cost model of that key (refit first when measurements landed
        since it was stored). Predictions, never measurements: nothing is measured or stored for them. 409 while the
        key has fewer finished measurements than a model needs; 400 with each bad field's message."""
        device = self.get_object()
        serializer = PredictRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = services.do_predict(device, data["settings"], data["architectures"])
        if isinstance(outcome, services.RefitResult):
            return Response({"detail": outcome.message, "measurements": outcome.measurements, "need": outcome.need},
                            status=status.HTTP_409_CONFLICT)
        return Response(_prediction_payload(outcome))

    @extend_schema(responses={200: PredictorKeySerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=LimitOffsetPagination, filter_backends=[])
    def predictor(self, request, name=None):
        """This device's measurement keys (profiling settings measured on it), each with its number of finished
        measurements and its stored cost model's held-out error (null before it has one), in key order."""
        keys = self.paginate_queryset(services.measured_keys(self.get_object()))
        return self.get_paginated_response([
            {**{k: v for k, v in key.items() if k != "fit"}, "need": MIN_OBSERVATIONS,
             "model": CostModelSerializer(key["fit"]).data if key["fit"] is not None else None}
            for key in keys])


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _prediction_payload(outcome: services.Prediction) -> dict[str, Any]:
    """The response of predict, built as plain dicts (1,000 rows through DRF's field machinery cost ~25 ms)."""
    model = CostModelSerializer(outcome.fit).data
    shared = {"measurements": outcome.fit.measurements, "latency_mape": outcome.fit.latency_mape,
              "memory_mape": outcome.fit.memory_mape}
    (lat, lat_lo, lat_hi), (mem, mem_lo, mem_hi) = outcome.latency, outcome.memory
    results = [{"archid": arch.archid, "latency_s": _finite(lat[i]),
                "latency_interval": [_finite(lat_lo[i]), _finite(lat_hi[i])], "memory_mb": _finite(mem[i]),
                "memory_interval": [_finite(mem_lo[i]), _finite(mem_hi[i])], **shared}
               for i, arch in enumerate(outcome.archs)]
    return {"model": model, "results": results}


class PresetsView(APIView):
    """The preset search spaces with their size and proxy range."""

    @extend_schema(responses={200: PresetSerializer(many=True)})
    def get(self, request):
        return Response([{"name": name, **SpacePreviewSerializer({"space": space}).data}
                         for name, space in PRESETS.items()])


class ArchitecturePreviewView(APIView):
    """An architecture config -> archid, non-embedding (proxy) and total parameters; 400 with field errors."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    def post(self, request):
        data = request.data
        config = data.get("config", data) if isinstance(data, dict) else data
        try:
            arch = Architecture.from_dict(config)
        except ConfigError as exc:
            return Response({"valid": False, "errors": {k: [v] for k, v in exc.errors.items()}},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response({**arch_record(arch), "config": arch.to_dict()})


class SpacePreviewView(APIView):
    """A search space (or preset) -> number of architectures and proxy range; 400 with field errors."""

    @extend_schema(request=SpacePreviewSerializer, responses={200: SpaceSummarySerializer})
    def post(self, request):
        serializer = SpacePreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(SpacePreviewSerializer(serializer.validated_data).data)
