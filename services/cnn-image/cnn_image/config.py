"""Settings from the environment: the shared MLflow/S3/loader settings (secrets as plain
variables or ``<NAME>_FILE``, see :mod:`mlops_serving.secrets`) plus the CIFAR-10 archive, the
training parameters and the upload limit."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mlops_serving.settings import ModelServiceSettings, SettingsError
from pydantic import Field

__all__ = ["Settings", "SettingsError", "get_settings"]


class Settings(ModelServiceSettings):
    """Everything the service reads from its environment (names are the upper-case fields)."""

    mlflow_experiment_name: str = "cifar10-cnn"
    model_name: str = "cifar10-cnn"
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


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
