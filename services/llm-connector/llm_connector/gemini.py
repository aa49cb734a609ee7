"""The one module that talks to the Gemini API (google-genai), mapping its failures to ours."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from llm_connector.config import Settings
from llm_connector.errors import NotConfiguredError, UpstreamError, UpstreamTimeout
from llm_connector.schemas import ChatRequest, ChatResponse, Usage

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

    async def generate(self, request: ChatRequest) -> ChatResponse:
        """One generateContent call; raises ConnectorError subclasses on every failure."""
        if self.client is None:
            raise NotConfiguredError(self.not_configured_detail(), fix=_KEY_FIX)
        model = self.settings.google_model
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
        key = self.settings.google_api_key
        secret = key.get_secret_value() if key is not None else None
        started = time.monotonic()
        try:
            response = await self.client.aio.models.generate_content(
                model=model, contents=contents, config=config
            )
        except genai_errors.APIError as exc:
            message = redact(exc.message or str(exc), secret)
            logger.warning("gemini %s answered %s %s", model, exc.code, exc.status)
            raise UpstreamError(
                f"Gemini answered {exc.code} {exc.status or ''}: {message}".replace("  ", " "),
                upstream_status=exc.code,
                fix=_fix_for(exc.code, message),
            ) from None
        except Exception as exc:  # transport failures of whichever HTTP library the SDK uses
            reason = redact(f"{type(exc).__name__}: {exc}", secret)
            if _is_timeout(exc):
                logger.warning("gemini %s timed out after %.1fs", model, time.monotonic() - started)
                raise UpstreamTimeout(
                    f"No answer from the Gemini API within {self.settings.request_timeout_s:g}s "
                    f"({reason}).",
                    fix="Retry later, or raise REQUEST_TIMEOUT_S.",
                ) from None
            logger.warning("gemini %s unreachable: %s", model, reason)
            raise UpstreamError(
                f"The Gemini API could not be reached ({reason}).",
                fix="Check the network path to the API (proxy, DNS, GOOGLE_API_BASE_URL).",
            ) from None

        text = response.text
        finish = None
        if response.candidates and response.candidates[0].finish_reason is not None:
            finish = str(response.candidates[0].finish_reason.value)
        if text is None:
            blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
            why = f"prompt blocked: {blocked.value}" if blocked else f"finish reason {finish}"
            raise UpstreamError(f"Gemini returned no text ({why}).")
        meta = response.usage_metadata
        usage = Usage(
            prompt_tokens=meta.prompt_token_count if meta else None,
            output_tokens=meta.candidates_token_count if meta else None,
            total_tokens=meta.total_token_count if meta else None,
        )
        logger.info(
            "gemini %s ok in %.2fs (prompt %d chars, answer %d chars)",
            model, time.monotonic() - started, len(request.prompt), len(text),
        )
        return ChatResponse(text=text, model=response.model_version or model, usage=usage,
                            finish_reason=finish)


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
