"""API routes of the model zoo (included under /api/v1/)."""
from __future__ import annotations

from django.urls import include, path

from lts_web.routers import Router
from models_zoo import api

router = Router()
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("training-runs", api.TrainingRunViewSet, basename="training-run")
router.register("zoo-models", api.ZooModelViewSet, basename="zoo-model")
router.register("zoo-imports", api.ZooImportViewSet, basename="zoo-import")

urlpatterns = [
    path("", include(router.urls)),
    path("models/<int:pk>/generate", api.GenerateView.as_view(), name="model-generate"),
    path("models/<int:pk>/generate/stream", api.GenerateStreamView.as_view(), name="model-generate-stream"),
]
