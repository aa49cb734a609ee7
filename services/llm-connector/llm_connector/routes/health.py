"""GET /health: liveness for the container healthcheck, plus whether a key is configured."""

from __future__ import annotations

from fastapi import APIRouter

from llm_connector.deps import GeminiDep
from llm_connector.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(gemini: GeminiDep) -> Health:
    """Always 200 while the process serves: a missing key is reported, not fatal."""
    settings = gemini.settings
    configured = gemini.client is not None
    return Health(
        model=settings.google_model,
        api_key_configured=configured,
        api_key_source=settings.api_key_source,
        problem=None if configured else gemini.not_configured_detail(),
    )
