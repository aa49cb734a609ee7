"""The one module that talks to the Gemini API (google-genai), mapping its failures to ours."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from llm_connector.config import Settings
from llm_connector.errors import (
    ConnectorError,
    NotConfiguredError,
    UpstreamError,
    UpstreamTimeout,
)
from llm_connector.schemas import ChatRequest, ChatResponse, StreamEvent, Usage

logger = logging.getLogger(__name__)

_KEY_FIX = (
    "Set the Gemini API key: with Compose, GOOGLE_API_KEY in the environment or .env; with "
    "Swarm, the google_api_key secret (GOOGLE_API_KEY_FILE=/run/secrets/google_api_key). "
    "Then restart the service."
)


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced (upstream messages can echo input)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "[redacted]")
    return text


def _is_timeout(exc: BaseException) -> bool:
    # The SDK may use httpx, httpx2 or aiohttp: match their timeout classes by name.
    return isinstance(exc, TimeoutError) or any(
        "Timeout" in cls.__name__ for cls in type(exc).__mro__
    )


@dataclass
class GeminiService:
    """Generates text with one configured model; ``client`` is None without an API key."""

    settings: Settings
    client: genai.Client | None

    @classmethod
    def from_settings(cls, settings: Settings) -> GeminiService:
        """Builds the SDK client (no network I/O happens here)."""
        if settings.google_api_key is None:
            return cls(settings=settings, client=None)
        http_options = types.HttpOptions(
            base_url=settings.google_api_base_url,
            api_version=settings.google_api_version,
            timeout=int(settings.request_timeout_s * 1000),
            # Explicit retry options: the SDK then owns retries (429/5xx/connection errors)
            # instead of its implicit sleep-and-retry on connection failures.
            retry_options=types.HttpRetryOptions(
                attempts=settings.retry_attempts,
                initial_delay=settings.retry_initial_delay_s,
                max_delay=max(settings.retry_initial_delay_s * 8, 1.0),
            ),
        )
        client = genai.Client(
            api_key=settings.google_api_key.get_secret_value(),
            vertexai=False,
            http_options=http_options,
        )
        return cls(settings=settings, client=client)

    def not_configured_detail(self) -> str:
        """Why there is no key (names a *_FILE that could not be read, never content)."""
        problem = self.settings.secret_errors.get("google_api_key")
        if problem:
            return f"The API key could not be read ({problem})."
        return "No Gemini API key is configured (GOOGLE_API_KEY or GOOGLE_API_KEY_FILE)."

    def _call(self, request: ChatRequest) -> tuple[genai.Client, list[types.Content],
                                                  types.GenerateContentConfig]:
        if self.client is None:
            raise NotConfiguredError(self.not_configured_detail(), fix=_KEY_FIX)
        contents: list[types.Content] = [
            types.Content(role=turn.role, parts=[types.Part(text=turn.text)])
            for turn in request.history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=request.prompt)]))
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=request.temperature,
            max_output_tokens=request.max_output_tokens,
        )
        return self.client, contents, config

    def _failure(self, exc: BaseException, started: float) -> ConnectorError:
        """The connector's error for an SDK failure (the key redacted from every message)."""
        model = self.settings.google_model
        key = self.settings.google_api_key
        secret = key.get_secret_value() if key is not None else None
        if isinstance(exc, genai_errors.APIError):
            message = redact(exc.message or str(exc), secret)
            logger.warning("gemini %s answered %s %s", model, exc.code, exc.status)
            return UpstreamError(
                f"Gemini answered {exc.code} {exc.status or ''}: {message}".replace("  ", " "),
                upstream_status=exc.code,
                fix=_fix_for(exc.code, message),
            )
        # Transport failures of whichever HTTP library the SDK uses.
        reason = redact(f"{type(exc).__name__}: {exc}", secret)
        if _is_timeout(exc):
            logger.warning("gemini %s timed out after %.1fs", model, time.monotonic() - started)
            return UpstreamTimeout(
                f"No answer from the Gemini API within {self.settings.request_timeout_s:g}s "
                f"({reason}).",
                fix="Retry later, or raise REQUEST_TIMEOUT_S.",
            )
        logger.warning("gemini %s unreachable: %s", model, reason)
        return UpstreamError(
            f"The Gemini API could not be reached ({reason}).",
            fix="Check the network path to the API (proxy, DNS, GOOGLE_API_BASE_URL).",
        )

    async def generate(self, request: ChatRequest) -> ChatResponse:
        """One generateContent call; raises ConnectorError subclasses on every failure."""
        client, contents, config = self._call(request)
        model = self.settings.google_model
        started = time.monotonic()
        try:
            response = await client.aio.models.generate_content(
                model=model, contents=contents, config=config
            )
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is mapped
            raise self._failure(exc, started) from None

        text = response.text
        finish = None
        if response.candidates and response.candidates[0].finish_reason is not None:
            finish = str(response.candidates[0].finish_reason.value)
        if text is None:
            blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
            why = f"prompt blocked: {blocked.value}" if blocked else f"finish reason {finish}"
            raise UpstreamError(f"Gemini returned no text ({why}).")
        logger.info(
            "gemini %s ok in %.2fs (prompt %d chars, answer %d chars)",
            model, time.monotonic() - started, len(request.prompt), len(text),
        )
        return ChatResponse(text=text, model=response.model_version or model,
                            usage=_usage(response), finish_reason=finish)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """streamGenerateContent: the answer's text pieces as they come, then a final event
        with the model, usage and finish reason. Raises ConnectorError subclasses; one raised
        before the first piece can still become an HTTP error status."""
        client, contents, config = self._call(request)
        model = self.settings.google_model
        started = time.monotonic()
        chars, finish, usage, version = 0, None, Usage(), model
        try:
            chunks = await client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            async for chunk in chunks:
                if chunk.candidates and chunk.candidates[0].finish_reason is not None:
                    finish = str(chunk.candidates[0].finish_reason.value)
                if chunk.usage_metadata:
                    usage = _usage(chunk)
                version = chunk.model_version or version
                text = chunk.text
                if text:
                    chars += len(text)
                    yield StreamEvent(delta=text)
        except ConnectorError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is mapped
            raise self._failure(exc, started) from None
        logger.info("gemini %s streamed in %.2fs (prompt %d chars, answer %d chars)",
                    model, time.monotonic() - started, len(request.prompt), chars)
        yield StreamEvent(done=True, model=version, usage=usage, finish_reason=finish)


def _usage(response: types.GenerateContentResponse) -> Usage:
    meta = response.usage_metadata
    return Usage(
        prompt_tokens=meta.prompt_token_count if meta else None,
        output_tokens=meta.candidates_token_count if meta else None,
        total_tokens=meta.total_token_count if meta else None,
    )


def _fix_for(code: int, message: str) -> str | None:
    # The Gemini API answers a bad key with 400 INVALID_ARGUMENT "API key not valid".
    if code in (401, 403) or (code == 400 and "api key" in message.lower()):
        return "Check the API key (GOOGLE_API_KEY / the google_api_key secret)."
    if code == 404:
        return "Check GOOGLE_MODEL: the model name is not known to the API."
    if code == 429:
        return "Quota or rate limit reached: retry later or raise the quota."
    if code >= 500:
        return "The Gemini API failed: retry later."
    return None
