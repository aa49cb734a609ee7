"""Settings from the environment (pydantic-settings), with ``<NAME>_FILE`` support."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class FileEnvSettingsSource(PydanticBaseSettingsSource):
    """Field NAME may come from the file named by env ``NAME_FILE`` (when NAME is unset/blank)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{field_name.upper()}_FILE", "").strip()
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text(encoding="utf-8").strip(), field_name, False
        except OSError as exc:
            raise ValueError(f"{field_name.upper()}_FILE={path}: {exc.strerror or exc}") from None

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if os.environ.get(name.upper(), "").strip():
                continue
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                data[key] = value
        return data


class Settings(BaseSettings):
    """Where the three APIs are, and how patiently to wait for them."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    llm_connector_url: str = "http://llm-connector:8000"
    sklearn_model_url: str = "http://sklearn-model:8001"
    cnn_image_url: str = "http://cnn-image:8002"
    # Per request; the LLM can be slow, the classifiers should not be.
    llm_timeout_s: float = Field(default=120.0, gt=0)
    model_timeout_s: float = Field(default=30.0, gt=0)
    max_upload_mb: int = Field(default=10, gt=0)
    title: str = "MLOps stack"
    host: str = "0.0.0.0"
    port: int = Field(default=7860, gt=0, lt=65536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("llm_connector_url", "sklearn_model_url", "cnn_image_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
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
        return (init_settings, FileEnvSettingsSource(settings_cls), env_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
