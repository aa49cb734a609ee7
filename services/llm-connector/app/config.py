"""Settings from the environment (pydantic-settings), with Docker-secret style ``*_FILE`` support.

Compose passes ``GOOGLE_API_KEY`` directly; Swarm passes ``GOOGLE_API_KEY_FILE=/run/secrets/...``.
Both work: for every field ``NAME``, an env var ``NAME_FILE`` names a file whose content (stripped)
is the value, unless ``NAME`` itself is set and not empty.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class FileEnvSettingsSource(PydanticBaseSettingsSource):
    """Reads ``<NAME>_FILE`` env vars: the value of field NAME is that file's stripped content.

    An unreadable file is not fatal here: it is returned as the ``file_errors`` field so the
    service can start, report it on /health and answer with a specific fix instead of
    crash-looping under the orchestrator.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.file_errors: dict[str, str] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env_name = f"{field_name.upper()}_FILE"
        path = os.environ.get(env_name, "").strip()
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            self.file_errors[field_name] = f"{env_name}={path}: {exc.strerror or exc}"
            return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if name == "file_errors" or os.environ.get(name.upper(), "").strip():
                continue  # the plain env var wins over NAME_FILE
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                data[key] = value
        if self.file_errors:
            data["file_errors"] = dict(self.file_errors)
        return data


class Settings(BaseSettings):
    """Runtime configuration of the llm-connector."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

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

    # Filled by FileEnvSettingsSource: why a *_FILE could not be read (never any content).
    file_errors: dict[str, str] = Field(default_factory=dict, exclude=True)

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file source only answers for fields whose plain env var is unset or blank, so it
        # can sit before env: a blank GOOGLE_API_KEY then falls through to GOOGLE_API_KEY_FILE.
        return (init_settings, FileEnvSettingsSource(settings_cls), env_settings)

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
