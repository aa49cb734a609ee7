"""POST /chat (alias /generate): one prompt in, the model's text out."""

from __future__ import annotations

from fastapi import APIRouter

from llm_connector.deps import GeminiDep
from llm_connector.errors import ConnectorError
from llm_connector.schemas import ChatRequest, ChatResponse

router = APIRouter(tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    503: {"description": "No API key configured"},
    502: {"description": "Gemini answered with an error or could not be reached"},
    504: {"description": "Gemini did not answer in time"},
    413: {"description": "Prompt too long"},
}


@router.post("/chat", response_model=ChatResponse, responses=_ERRORS)
@router.post("/generate", response_model=ChatResponse, responses=_ERRORS)
async def chat(body: ChatRequest, gemini: GeminiDep) -> ChatResponse:
    """Generates an answer with the configured model."""
    total = len(body.prompt) + sum(len(t.text) for t in body.history) + len(body.system or "")
    limit = gemini.settings.max_prompt_chars
    if total > limit:
        error = ConnectorError(
            f"The prompt (with system and history) has {total} characters; the limit is {limit}.",
            fix="Shorten the prompt or raise MAX_PROMPT_CHARS.",
        )
        error.status_code = 413
        error.title = "Prompt too long"
        raise error
    return await gemini.generate(body)
