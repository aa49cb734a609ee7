"""The app factory of the model services: FastAPI with /health, the service's own routers, and
the model loader running in a background thread for the app's lifetime (so /health answers
from the first second)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from mlops_serving import health, validation
from mlops_serving.loader import ModelState, run_loader
from mlops_serving.registry import Flavour
from mlops_serving.settings import ModelServiceSettings


def create_model_app(settings: ModelServiceSettings, flavour: Flavour[Any], *, title: str,
                     summary: str, routers: Sequence[APIRouter]) -> FastAPI:
    """The app; ``app.state`` holds ``settings`` and ``model_state`` for the dependencies."""
    state = ModelState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.export_environment()
        stop = threading.Event()
        loader = threading.Thread(target=run_loader, args=(settings, state, stop, flavour),
                                  name="model-loader", daemon=True)
        loader.start()
        try:
            yield
        finally:
            stop.set()
            loader.join(timeout=10)

    app = FastAPI(title=title, summary=summary, version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.model_state = state
    validation.install(app)  # a malformed request is a 422 in JSON, whatever it held
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    return app
