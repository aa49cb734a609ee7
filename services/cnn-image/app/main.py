"""The FastAPI application: ``create_app()`` (a factory, so settings are read at start, not at
import). The model loads in a background thread so /health answers from the first second."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.loader import ModelState, run_loader
from app.routers import health, model, predict

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the model loader starts with the app's lifespan and stops with it."""
    settings = settings or get_settings()
    state = ModelState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.export_environment()
        stop = threading.Event()
        loader = threading.Thread(target=run_loader, args=(settings, state, stop),
                                  name="model-loader", daemon=True)
        loader.start()
        try:
            yield
        finally:
            stop.set()
            loader.join(timeout=10)

    app = FastAPI(title="cnn-image", summary="CIFAR-10 image classes (Keras CNN via MLflow)",
                  version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.model_state = state
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(predict.router)
    return app
