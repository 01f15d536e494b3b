"""Query filters of the candidates and measurements lists (django-filter)."""
from __future__ import annotations

import django_filters as df

from searches.models import Candidate, Measurement


class CandidateFilter(df.FilterSet):
    job = df.NumberFilter(field_name="job_id")
    pareto = df.BooleanFilter(field_name="is_pareto")
    feasible = df.BooleanFilter(field_name="feasible")
    status = df.ChoiceFilter(choices=Candidate.Status.choices)
    generation = df.NumberFilter()
    archid = df.CharFilter()
    min_proxy = df.NumberFilter(field_name="non_embedding_params", lookup_expr="gte")
    max_proxy = df.NumberFilter(field_name="non_embedding_params", lookup_expr="lte")
    min_latency = df.NumberFilter(field_name="measurement__latency_median_s", lookup_expr="gte")
    max_latency = df.NumberFilter(field_name="measurement__latency_median_s", lookup_expr="lte")
    min_memory = df.NumberFilter(field_name="measurement__peak_memory_mb", lookup_expr="gte")
    max_memory = df.NumberFilter(field_name="measurement__peak_memory_mb", lookup_expr="lte")
    min_n_layer = df.NumberFilter(field_name="n_layer", lookup_expr="gte")
    max_n_layer = df.NumberFilter(field_name="n_layer", lookup_expr="lte")
    min_d_model = df.NumberFilter(field_name="d_model", lookup_expr="gte")
    max_d_model = df.NumberFilter(field_name="d_model", lookup_expr="lte")
    min_d_inner = df.NumberFilter(field_name="d_inner", lookup_expr="gte")
    max_d_inner = df.NumberFilter(field_name="d_inner", lookup_expr="lte")
    n_head = df.NumberFilter()
    ordering = df.OrderingFilter(fields=(
        ("non_embedding_params", "proxy"), ("measurement__latency_median_s", "latency"),
        ("measurement__peak_memory_mb", "memory"), ("generation", "generation"), ("archid", "archid"),
        ("n_layer", "n_layer"), ("d_model", "d_model"), ("d_inner", "d_inner"), ("n_head", "n_head"),
        ("revision", "revision"), ("id", "id"),
    ))

    class Meta:
        model = Candidate
        fields: list[str] = []


class MeasurementFilter(df.FilterSet):
    device = df.CharFilter(field_name="device__name")
    archid = df.CharFilter()
    status = df.ChoiceFilter(choices=Measurement.Status.choices)
    backend = df.CharFilter()
    mode = df.CharFilter()

    class Meta:
        model = Measurement
        fields: list[str] = []
