"""Pages of the model zoo (included under /zoo/)."""
from __future__ import annotations

from django.urls import path

from models_zoo import views

urlpatterns = [
    path("", views.zoo_list, name="zoo"),
    path("import/", views.zoo_import, name="zoo-import"),
    path("playground/", views.playground, name="playground"),
    path("models/<int:pk>/", views.zoo_detail, name="zoo-model"),
    path("models/<int:pk>/download/", views.zoo_download, name="zoo-download"),
    path("models/<int:pk>/delete/", views.zoo_delete, name="zoo-delete"),
    path("runs/", views.run_list, name="training-runs"),
    path("runs/<int:pk>/", views.run_detail, name="training-run"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="training-cancel"),
    path("train/", views.train_new, name="training-new"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="dataset-delete"),
]
