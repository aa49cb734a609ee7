"""The ASGI app: FastAPI with GET /health (for the container healthcheck), Gradio mounted at /."""

from __future__ import annotations

import logging
import os

# Before gradio is imported: it reads these at import time and otherwise calls outside hosts.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from gradio_frontend.config import Settings, get_settings  # noqa: E402
from gradio_frontend.ui import THEME, build_ui  # noqa: E402

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """FastAPI app with /health, and the UI for ``settings`` mounted at the root."""
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(title="gradio-frontend", docs_url=None, redoc_url=None, openapi_url=None)

    # Registered before the mount at "/", so this route wins. Liveness only: the backends
    # have their own healthchecks and the UI reports them when they are down.
    @app.get("/health")
    def health() -> dict[str, object]:
        return {
            "status": "ok",
            "backends": {
                "llm_connector": settings.llm_connector_url,
                "sklearn_model": settings.sklearn_model_url,
                "cnn_image": settings.cnn_image_url,
            },
        }

    logger.info("backends: llm=%s sklearn=%s cnn=%s", settings.llm_connector_url,
                settings.sklearn_model_url, settings.cnn_image_url)
    mounted: FastAPI = gr.mount_gradio_app(
        app, build_ui(settings), path="",
        theme=THEME, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
        footer_links=[], max_file_size=f"{settings.max_upload_mb}mb",
        server_name=settings.host, server_port=settings.port,
    )
    return mounted


app = create_app()
