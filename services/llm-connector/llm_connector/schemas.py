"""Request and response bodies of the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Turn(BaseModel):
    """One earlier message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "model"]
    text: str = Field(min_length=1)


class ChatRequest(BaseModel):
    """A prompt (plus optional system instruction, history and sampling settings)."""

    # allow_inf_nan=False: a NaN/Infinity temperature is "not a finite number" (Python's JSON
    # reader accepts those literals), never passed on to Gemini.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(min_length=1)
    system: str | None = None
    history: list[Turn] = Field(default_factory=list, max_length=100)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_output_tokens: int | None = Field(default=None, gt=0, le=65_536)


class Usage(BaseModel):
    """Token counts reported by the model."""

    prompt_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


class ChatResponse(BaseModel):
    """The model's answer."""

    text: str
    model: str
    usage: Usage
    finish_reason: str | None = None


class StreamEvent(BaseModel):
    """One line of POST /chat/stream (NDJSON): a piece of the answer (``delta``), the end
    (``done`` with the model, usage and finish reason), or a failure after the answer began
    (``error``, the shape of the error responses)."""

    delta: str | None = None
    done: bool = False
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error: dict[str, object] | None = None


class Health(BaseModel):
    """Liveness plus configuration state (never secrets)."""

    status: Literal["ok"] = "ok"
    model: str
    api_key_configured: bool
    api_key_source: Literal["env", "file"] | None
    problem: str | None = None
