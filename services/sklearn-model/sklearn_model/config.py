"""Settings from the environment: the shared MLflow/S3/loader settings (secrets as plain
variables or ``<NAME>_FILE``, see :mod:`mlops_serving.secrets`) plus the Titanic data set and
the forest's hyper-parameters."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mlops_serving.settings import ModelServiceSettings, SettingsError
from pydantic import Field

__all__ = ["Settings", "SettingsError", "get_settings"]


class Settings(ModelServiceSettings):
    """Everything the service reads from its environment (names are the upper-case fields)."""

    mlflow_experiment_name: str = "titanic-rf"
    model_name: str = "titanic-rf"
    titanic_csv: Path = Path("/opt/data/titanic.csv")

    # Training hyper-parameters (also logged as MLflow params).
    n_estimators: int = Field(default=300, ge=1, le=5000)
    max_depth: int | None = Field(default=10, ge=1)
    min_samples_leaf: int = Field(default=2, ge=1)
    max_features: float = Field(default=0.5, gt=0.0, le=1.0)
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    random_state: int = 42
    # Stratified k-fold CV logged next to the held-out metrics (1: skipped).
    cv_folds: int = Field(default=5, ge=1, le=20)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
