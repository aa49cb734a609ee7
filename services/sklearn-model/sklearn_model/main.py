"""The FastAPI application: ``create_app()`` (a factory, so settings are read at start, not at
import), built by :func:`mlops_serving.app.create_model_app` with this service's routers."""

from __future__ import annotations

from fastapi import FastAPI
from mlops_serving.app import create_model_app

from sklearn_model.config import Settings, get_settings
from sklearn_model.flavour import FLAVOUR
from sklearn_model.routers import model, predict


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the model loader starts with the app's lifespan and stops with it."""
    return create_model_app(settings or get_settings(), FLAVOUR, title="sklearn-model",
                            summary="Titanic survival (RandomForest via MLflow)",
                            routers=[model.router, predict.router])
