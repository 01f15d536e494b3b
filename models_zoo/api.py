"""REST API of the model zoo under /api/v1/: datasets, training runs, zoo models (download, import)."""
from __future__ import annotations

import json

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from lts_web.errors import field_errors
from lts_web.throttling import GenerateThrottle, StartWorkThrottled
from models_zoo import generation, services
from models_zoo.archive import stream_zip
from models_zoo.core.generation import GenerationError
from models_zoo.models import Dataset, TrainingRun, ZooImport, ZooModel
from models_zoo.permissions import CanChange, visible
from models_zoo.serializers import (
    DatasetCreateSerializer,
    DatasetSerializer,
    GenerateSerializer,
    GenerationEventSerializer,
    GenerationResultSerializer,
    TrainingRunCreateSerializer,
    TrainingRunListSerializer,
    TrainingRunSerializer,
    ZooImportSerializer,
    ZooImportStatusSerializer,
    ZooModelSerializer,
)
from searches.core.arch import ConfigError


class DatasetViewSet(StartWorkThrottled, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Training text of your teams: an upload (multipart, field ``file``), a folder under LTS_DATA_ROOT, or a
    Hugging Face dataset. Deleting needs the owner or a team admin, and no queued or running run using it."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema; get_queryset scopes to the caller's teams
    permission_classes = [IsAuthenticated, CanChange]
    filterset_fields = ["kind", "team"]

    def get_queryset(self):
        return visible(Dataset, self.request.user).select_related("owner", "team").order_by("-created_at")

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def create(self, request, *args, **kwargs):
        serializer = DatasetCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("file", None)
        dataset = services.do_register_dataset(owner=request.user, upload=upload, **data)
        return Response(DatasetSerializer(self.get_queryset().get(pk=dataset.pk)).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Dataset) -> None:
        services.do_delete_dataset(instance)


class TrainingRunViewSet(StartWorkThrottled, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         viewsets.GenericViewSet):
    """Training runs of your teams with their live progress (step, tokens, losses, perplexity, tokens/s, ETA; the
    history of progress points in the detail). Create from a candidate or a pasted architecture; cancel needs the
    owner or a team admin."""

    serializer_class = TrainingRunSerializer
    queryset = TrainingRun.objects.none()
    permission_classes = [IsAuthenticated, CanChange]
    filterset_fields = ["status", "team", "dataset", "candidate"]

    def get_queryset(self):
        rows = visible(TrainingRun, self.request.user).select_related("owner", "team", "dataset", "zoo_model")
        if self.action == "list":
            rows = rows.defer("history")
        return rows.order_by("-created_at")

    def get_serializer_class(self):
        return TrainingRunListSerializer if self.action == "list" else TrainingRunSerializer

    @extend_schema(request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer})
    def create(self, request, *args, **kwargs):
        serializer = TrainingRunCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = services.do_start_training(
            owner=request.user, team=data["team"], dataset=data["dataset"], tokenizer=data["tokenizer"],
            config=data["config"], architecture=data.get("architecture"), candidate=data.get("candidate"),
            name=data.get("name", ""))
        return Response(TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued run now, or ask a running one to stop (it checkpoints and stops within a heartbeat)."""
        run = services.do_cancel_training(self.get_object())
        return Response(TrainingRunSerializer(self.get_queryset().get(pk=run.pk)).data)


class ZooModelViewSet(StartWorkThrottled, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                      viewsets.GenericViewSet):
    """Trained and imported GPT-2 checkpoints of your teams with validation perplexity, proxy, and latency and
    memory per device (every finished measurement of the archid); download as a zip; import a checkpoint."""

    serializer_class = ZooModelSerializer
    queryset = ZooModel.objects.none()
    permission_classes = [IsAuthenticated, CanChange]
    filterset_fields = ["source", "team", "archid"]
    start_work_actions = ("import_model",)

    def get_queryset(self):
        return visible(ZooModel, self.request.user).select_related("owner", "team").order_by("-created_at")

    def _context(self, models: list[ZooModel]) -> dict:
        archids = [a for m in models for a in m.archids]
        return {**self.get_serializer_context(), "measurements": services.measurements_by_archid(archids)}

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        data = ZooModelSerializer(rows, many=True, context=self._context(rows)).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request, *args, **kwargs):
        model = self.get_object()
        return Response(ZooModelSerializer(model, context=self._context([model])).data)

    def perform_destroy(self, instance: ZooModel) -> None:
        services.do_delete_model(instance)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The checkpoint folder as a zip (config.json, model.safetensors, tokenizer files, README.md), streamed."""
        return archive_response(self.get_object())

    @extend_schema(request=ZooImportSerializer, responses={201: ZooModelSerializer, 202: ZooImportStatusSerializer})
    @action(detail=False, methods=["post"], url_path="import")
    def import_model(self, request):
        """Import a Hugging Face GPT-2 checkpoint folder (``path`` under LTS_DATA_ROOT: 201 with the zoo model) or a
        hub id (``hub_id``, online only: 202 with the import, which a worker downloads; follow it at
        /api/v1/zoo-imports/<id>/); its archid and proxy come from its config.json. ``profile_device`` queues its
        latency and memory measurement on that device."""
        serializer = ZooImportSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        hub = data["source"].startswith("hub:")
        try:
            if hub:
                queued = services.do_request_import(owner=request.user, **data)
                return Response(ZooImportStatusSerializer(ZooImport.objects.select_related("owner").get(pk=queued.pk))
                                .data, status=status.HTTP_202_ACCEPTED)
            model = services.do_import_model(owner=request.user, **data)
        except ConfigError as exc:
            errors = exc.errors
            if "source" in errors:  # the field the client sent
                errors = {("hub_id" if "hub_id" in request.data else "path"): errors["source"]}
            raise ValidationError({k: [v] for k, v in errors.items()}) from None
        model = self.get_queryset().get(pk=model.pk)
        return Response(ZooModelSerializer(model, context=self._context([model])).data, status=status.HTTP_201_CREATED)


class ZooImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Hub imports of your teams, newest first: queued, running, completed (with the new zoo model) or failed (with
    the reason). POST /api/v1/zoo-models/import/ with a ``hub_id`` starts one."""

    serializer_class = ZooImportStatusSerializer
    queryset = ZooImport.objects.none()
    filterset_fields = ["status", "team"]

    def get_queryset(self):
        return visible(ZooImport, self.request.user).select_related("owner").order_by("-created_at")


def archive_response(model: ZooModel) -> StreamingHttpResponse:
    """The zoo model's folder as a streamed zip named after the model (shared by the API and the page)."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model.name).strip("-.") or f"model-{model.pk}"
    response = StreamingHttpResponse(stream_zip(model.folder, slug), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}.zip"'
    return response


class EventStreamRenderer(BaseRenderer):
    """text/event-stream, so that clients asking for it are served; error bodies before the stream are JSON."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


def sse(event: str, data: dict) -> bytes:
    """One server-sent event; a keep-alive is a comment line."""
    if event == "keepalive":
        return b": keep-alive\n\n"
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _GenerateBase(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [GenerateThrottle]

    def _start(self, request, pk: int) -> generation.GenerationHandle:
        model = get_object_or_404(visible(ZooModel, request.user), pk=pk)
        body = GenerateSerializer(data=request.data)  # a misspelt setting (max_tokens) is refused, not ignored
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        prompt = data.pop("prompt")
        try:
            return generation.do_start_generation(user=request.user, model=model, prompt=prompt, sampling=data)
        except GenerationError as exc:
            raise field_errors(exc) from None
        except generation.LimitExceeded as exc:
            raise Throttled(detail=str(exc)) from None


class GenerateView(_GenerateBase):
    """Continue a prompt with a zoo model and return the whole completion (the tokens, their ids, time to first
    token, tokens per second). Runs on a `generate` worker; 400 with field messages for bad settings or a prompt
    beyond the limits, 429 beyond LTS_GENERATE_MAX_CONCURRENT generations at once per user, 503 when no worker takes
    it within LTS_GENERATE_QUEUE_WAIT_S."""

    @extend_schema(request=GenerateSerializer, responses={200: GenerationResultSerializer})
    def post(self, request, pk: int):
        result, error = generation.collect(self._start(request, pk))
        if error is not None:
            if error.get("errors"):  # found by the worker (the model cannot be loaded, say)
                return Response({k: [v] for k, v in error["errors"].items()}, status=error.get("status", 400))
            return Response({"detail": error["detail"]}, status=error.get("status", 502))
        return Response(result)


class GenerateStreamView(_GenerateBase):
    """The same as generate, streamed as server-sent events while the worker produces them: ``start`` (queue wait,
    model load), ``text`` ({"text": new text, "tokens": count so far}) as each piece is decoded, then ``done`` (the
    whole result, as the non-streaming endpoint returns it) or ``error`` ({"detail", "status"}). Validation errors
    and limits are answered before the stream starts, as JSON with 400 or 429."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(request=GenerateSerializer, responses={(200, "text/event-stream"): OpenApiResponse(
        GenerationEventSerializer, description="the events, one after another: start, text (each new piece), then "
                                               "done (the result) or error")})
    def post(self, request, pk: int):
        handle = self._start(request, pk)
        events = generation.events(handle)

        def stream():
            try:
                for event, data in events:
                    yield sse(event, data)
            finally:
                events.close()  # a client that went away: the worker is asked to stop

        response = StreamingHttpResponse(stream(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response
