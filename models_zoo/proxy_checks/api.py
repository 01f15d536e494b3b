"""REST API of proxy checks under /api/v1/proxy-checks/."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from lts_web.throttling import StartWorkThrottled
from models_zoo.permissions import CanChange, visible
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.models import ProxyCheck, ProxyCheckRun
from models_zoo.proxy_checks.serializers import (
    ProxyCheckCreateSerializer,
    ProxyCheckDetailSerializer,
    ProxyCheckSerializer,
)


def with_members(rows: QuerySet[ProxyCheck]) -> QuerySet[ProxyCheck]:
    """The checks with their runs (without loss histories) and zoo models: three queries for any number of checks."""
    members = ProxyCheckRun.objects.select_related("run", "run__zoo_model").defer("run__history")
    return rows.select_related("owner", "team", "dataset").prefetch_related(Prefetch("members", queryset=members))


class ProxyCheckViewSet(StartWorkThrottled, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """How well the LTS proxy ranks real validation perplexity on your data: K architectures drawn across the proxy
    range of a space (or a finished search's candidates) are trained through the normal training path (they land in
    the zoo), then Spearman's rho and Kendall's tau of the proxy, total parameters and d_model against validation
    perplexity are reported with 95% bootstrap intervals. Partial results appear as models finish; failed runs are
    listed with their reason and excluded. Cancel and delete need the owner or a team admin."""

    serializer_class = ProxyCheckSerializer
    queryset = ProxyCheck.objects.none()
    permission_classes = [IsAuthenticated, CanChange]
    filterset_fields = ["status", "team", "search", "dataset"]

    def get_queryset(self):
        return with_members(visible(ProxyCheck, self.request.user)).order_by("-created_at")

    def get_serializer_class(self):
        return ProxyCheckSerializer if self.action == "list" else ProxyCheckDetailSerializer

    @extend_schema(request=ProxyCheckCreateSerializer, responses={201: ProxyCheckDetailSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ProxyCheckCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        # A ConfigError is a 400 with its field messages (lts_web.errors.exception_handler).
        check = services.do_create_proxy_check(owner=request.user, **data)
        return Response(ProxyCheckDetailSerializer(self.get_queryset().get(pk=check.pk)).data,
                        status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        try:
            services.do_delete_proxy_check(self.get_object())
        except services.Conflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ProxyCheckDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the queued runs and stop the running ones (each keeps its last checkpoint)."""
        check = services.do_cancel_proxy_check(self.get_object())  # Conflict (409) when it had finished
        return Response(ProxyCheckDetailSerializer(self.get_queryset().get(pk=check.pk)).data)
