"""Settings from the environment (pydantic-settings).

Credentials come either as plain variables (Compose: ``AWS_ACCESS_KEY_ID``) or as a path in
``<NAME>_FILE`` (Swarm secrets: ``AWS_ACCESS_KEY_ID_FILE=/run/secrets/s3_access_key``), never
both. Secret values are :class:`~pydantic.SecretStr` so they never show up in reprs or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Variables that may be given as ``<NAME>_FILE`` (the official postgres/MinIO images' convention).
FILE_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class SettingsError(ValueError):
    """A setting is missing, contradictory or unreadable; the message names the variable."""


def read_file_vars(
    environ: Mapping[str, str], names: tuple[str, ...] = FILE_VARS
) -> dict[str, str]:
    """Values of ``names`` whose ``<NAME>_FILE`` is set, read from those files.

    Raises :class:`SettingsError` if both ``NAME`` and ``NAME_FILE`` are set, or the file cannot
    be read. The value is never part of the message.
    """
    out: dict[str, str] = {}
    for name in names:
        path = environ.get(f"{name}_FILE")
        if not path:
            continue
        if environ.get(name):
            raise SettingsError(f"both {name} and {name}_FILE are set: set only one of them")
        try:
            # Secret files often end with a newline (echo ... | docker secret create).
            out[name] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(
                f"{name}_FILE={path}: cannot read the file ({exc.strerror or exc})"
            ) from exc
        if not out[name]:
            raise SettingsError(f"{name}_FILE={path}: the file is empty")
    return out


class Settings(BaseSettings):
    """Everything the service reads from its environment (names are the upper-case fields)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    mlflow_tracking_uri: str = "http://mlflow-server:5000"
    mlflow_s3_endpoint_url: str | None = None
    mlflow_experiment_name: str = "cifar10-cnn"
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_default_region: str = "us-east-1"

    model_name: str = "cifar10-cnn"
    model_alias: str = "champion"
    model_dir: Path = Path("/models")
    train_if_missing: bool = True
    # The extracted official archive (cifar-10-batches-py, or a folder holding it). Unset: keras'
    # downloader fetches it into MODEL_DIR/datasets (needs internet access).
    cifar10_dir: Path | None = None

    # Training (also logged as MLflow params). TRAIN_LIMIT caps the training images so a
    # fallback training at startup stays short; unset = all 50,000.
    epochs: int = Field(default=5, ge=1, le=500)
    batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, lt=1)
    train_limit: int | None = Field(default=10_000, ge=1)
    seed: int = 42

    # Upload limit of POST /predict.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    # Startup: how long one attempt may back off at most, and when to stop trying MLflow and
    # fall back to a cached model (the loop keeps polling afterwards).
    startup_backoff_max: float = Field(default=15.0, gt=0)
    startup_wait_seconds: float = Field(default=120.0, ge=0)
    # How often MLflow is asked which version the alias points at (a model registered while the
    # service waits for one, or a new champion, is served within this delay; no restart).
    model_poll_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        # The *_FILE variables are read here so the fields stay plain SecretStr.
        if not isinstance(data, dict):
            return data
        files = read_file_vars(os.environ)
        merged = {k.lower(): v for k, v in files.items()}
        merged.update(data)
        return merged

    def export_environment(self) -> None:
        """Put the S3 settings where boto3 (inside MLflow) looks: the process environment.

        Also caps MLflow's own HTTP retries (default: 7 with exponential backoff, minutes per
        call) so the loader's backoff, which reports its state on /health, is the one in charge.
        """
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if self.aws_access_key_id is not None:
            os.environ["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id.get_secret_value()
        if self.aws_secret_access_key is not None:
            os.environ["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key.get_secret_value()
        if self.mlflow_s3_endpoint_url:
            os.environ["MLFLOW_S3_ENDPOINT_URL"] = self.mlflow_s3_endpoint_url
        os.environ.setdefault("AWS_DEFAULT_REGION", self.aws_default_region)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
