"""Settings from the environment (pydantic-settings); any of them may come as ``<NAME>_FILE``
(:mod:`mlops_serving.secrets`, as in every service image)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from mlops_serving.settings import ServiceSettings
from pydantic import Field, field_validator


class Settings(ServiceSettings):
    """Where the three APIs are, and how patiently to wait for them."""

    llm_connector_url: str = "http://llm-connector:8000"
    sklearn_model_url: str = "http://sklearn-model:8001"
    cnn_image_url: str = "http://cnn-image:8002"
    # MLflow's API as this service reaches it (Models tab), and its UI as a browser does (a
    # link; the stack publishes it on the manager's loopback by default).
    mlflow_url: str = "http://mlflow-server:5000"
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    # How often the Status tab probes the backends' /health.
    status_refresh_s: float = Field(default=10.0, ge=1)
    # Per request; the LLM can be slow, the classifiers should not be.
    llm_timeout_s: float = Field(default=120.0, gt=0)
    model_timeout_s: float = Field(default=30.0, gt=0)
    max_upload_mb: int = Field(default=10, gt=0)
    title: str = "MLOps stack"
    host: str = "0.0.0.0"
    port: int = Field(default=7860, gt=0, lt=65536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("llm_connector_url", "sklearn_model_url", "cnn_image_url", "mlflow_url",
                     "mlflow_ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
