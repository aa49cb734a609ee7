"""Settings from the environment (pydantic-settings), secrets as in every service image
(:mod:`mlops_serving.secrets`).

Compose passes ``GOOGLE_API_KEY`` directly; Swarm passes ``GOOGLE_API_KEY_FILE=/run/secrets/...``.
Both work: for every field ``NAME``, an env var ``NAME_FILE`` names a file whose content (stripped)
is the value; a blank value (plain or file) means unset.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, ClassVar, Literal

from mlops_serving.settings import ServiceSettings
from pydantic import Field, SecretStr, field_validator


class Settings(ServiceSettings):
    """Runtime configuration of the llm-connector."""

    # Without a key the service still runs and is healthy (/chat answers 503 with the fix): an
    # unreadable key file is reported on /health, not fatal (no crash loop under Swarm).
    secret_errors_fatal: ClassVar[bool] = False

    google_api_key: SecretStr | None = None
    google_model: str = "gemini-2.5-flash"
    # A different endpoint for the Gemini REST API (a proxy, a gateway, a local test server).
    google_api_base_url: str | None = None
    google_api_version: str | None = None  # None = the SDK's default
    request_timeout_s: float = Field(default=60.0, gt=0)
    # Attempts per request including the first; 429/5xx and connection errors are retried.
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_initial_delay_s: float = Field(default=1.0, ge=0)
    max_prompt_chars: int = Field(default=32_000, gt=0)
    host: str = "0.0.0.0"
    port: int = Field(default=8000, gt=0, lt=65536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("google_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # Compose renders GOOGLE_API_KEY="${GOOGLE_API_KEY:-}": an empty string means "not set".
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str):
            return value.strip()
        return value

    @field_validator("google_api_base_url", "google_api_version", mode="before")
    @classmethod
    def _blank_str_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def api_key_source(self) -> Literal["env", "file"] | None:
        """Where the key came from (for /health); never the key itself."""
        if self.google_api_key is None:
            return None
        return "env" if os.environ.get("GOOGLE_API_KEY", "").strip() else "file"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
