"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llm_connector.gemini import GeminiService


def get_gemini(request: Request) -> GeminiService:
    """The GeminiService built at startup (see app.main.create_app)."""
    service: GeminiService = request.app.state.gemini
    return service


GeminiDep = Annotated[GeminiService, Depends(get_gemini)]
