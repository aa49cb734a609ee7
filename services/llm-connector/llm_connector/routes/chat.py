"""POST /chat (alias /generate): one prompt in, the model's text out; POST /chat/stream: the
same, the text streamed as it is generated (NDJSON lines, see :class:`StreamEvent`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from llm_connector.deps import GeminiDep
from llm_connector.errors import ConnectorError
from llm_connector.schemas import ChatRequest, ChatResponse, StreamEvent

router = APIRouter(tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    503: {"description": "No API key configured"},
    502: {"description": "Gemini answered with an error or could not be reached"},
    504: {"description": "Gemini did not answer in time"},
    413: {"description": "Prompt too long"},
}


def _check_length(body: ChatRequest, gemini: GeminiDep) -> None:
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


@router.post("/chat", response_model=ChatResponse, responses=_ERRORS)
@router.post("/generate", response_model=ChatResponse, responses=_ERRORS)
async def chat(body: ChatRequest, gemini: GeminiDep) -> ChatResponse:
    """Generates an answer with the configured model."""
    _check_length(body, gemini)
    return await gemini.generate(body)


_STREAM_DOC: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/x-ndjson": {}},
          "description": "One StreamEvent JSON object per line"}}


@router.post("/chat/stream", response_class=StreamingResponse,
             responses={**_ERRORS, **_STREAM_DOC})
async def chat_stream(body: ChatRequest, gemini: GeminiDep) -> StreamingResponse:
    """Streams the answer: ``{"delta": "..."}`` lines as Gemini generates them, then
    ``{"done": true, "model", "usage", "finish_reason"}``. A failure before the first piece
    is an error status with the usual JSON body; after it, an ``{"error": {...}}`` line."""
    _check_length(body, gemini)
    events = gemini.stream(body)
    try:
        first = await anext(events)  # errors up to here keep their HTTP status
    except StopAsyncIteration:
        first = StreamEvent(done=True, model=gemini.settings.google_model)

    async def lines() -> AsyncIterator[str]:
        yield first.model_dump_json(exclude_none=True) + "\n"
        try:
            async for event in events:
                yield event.model_dump_json(exclude_none=True) + "\n"
        except ConnectorError as exc:
            yield StreamEvent(error=exc.to_body()["error"]).model_dump_json(  # type: ignore[arg-type]
                exclude_none=True) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
