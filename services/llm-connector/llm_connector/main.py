"""The FastAPI application: ``app`` for uvicorn, ``create_app`` for tests and other settings."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mlops_serving import validation

from llm_connector.config import Settings, get_settings
from llm_connector.errors import ConnectorError
from llm_connector.gemini import GeminiService
from llm_connector.routes import chat, health

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; the Gemini client is created once, here, from ``settings``."""
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = FastAPI(title="llm-connector", version="0.1.0")
    app.state.gemini = GeminiService.from_settings(settings)
    if settings.google_api_key is None:
        logger.warning("no Gemini API key configured: /chat answers 503 until one is set")
    for problem in settings.secret_errors.values():
        logger.warning("secret file not readable: %s", problem)

    @app.exception_handler(ConnectorError)
    async def _connector_error(_: Request, exc: ConnectorError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.to_body())

    validation.install(app)  # a malformed request is a 422 in JSON, whatever it held
    app.include_router(health.router)
    app.include_router(chat.router)
    return app


app = create_app()
