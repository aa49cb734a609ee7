"""Settings bases (pydantic-settings) whose secrets come from :mod:`mlops_serving.secrets`.

Every field ``name`` may be given as the variable ``NAME`` or as a file named by ``NAME_FILE``
(:func:`~mlops_serving.secrets.read_secret` decides, the same way in every service). A service
whose secrets are optional to it (the llm-connector runs, healthy, without a Gemini key) sets
``secret_errors_fatal = False``: an unreadable file then leaves the field unset and is kept in
``secret_errors`` for its health endpoint, instead of failing at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlops_serving.secrets import SecretFileError, read_secret


class SettingsError(ValueError):
    """A setting is missing, contradictory or unreadable; the message names the variable."""


class SecretFileSource(PydanticBaseSettingsSource):
    """Field values from ``<NAME>_FILE`` files (plain ``NAME`` variables are the env source's)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # read_secret returns the plain value when only NAME is set: that one is left to the
        # env source (which also parses it), so only file contents are answered here.
        env_name = field_name.upper()
        if not os.environ.get(f"{env_name}_FILE", "").strip():
            return None, field_name, False
        return read_secret(os.environ, env_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        fatal = getattr(self.settings_cls, "secret_errors_fatal", True)
        for name, field in self.settings_cls.model_fields.items():
            try:
                value, key, _ = self.get_field_value(field, name)
            except SecretFileError as exc:
                if fatal:
                    raise SettingsError(str(exc)) from None
                errors[name] = str(exc)
                continue
            if value is not None:
                data[key] = value
        if errors:
            data["secret_errors"] = errors
        return data


class ServiceSettings(BaseSettings):
    """Base of every service's settings: environment variables, ``*_FILE`` secrets, defaults."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    #: False: an unreadable secret file is reported in ``secret_errors`` instead of raised.
    secret_errors_fatal: ClassVar[bool] = True

    # Why a *_FILE could not be read, by field (never any content); only when not fatal.
    secret_errors: dict[str, str] = Field(default_factory=dict, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file source only answers where NAME_FILE is set, and read_secret refuses NAME
        # being set too: its place before env decides nothing but a blank NAME, which then
        # falls through to the file.
        return (init_settings, SecretFileSource(settings_cls), env_settings)


class ModelServiceSettings(ServiceSettings):
    """What every model service reads: MLflow, S3, the registered model and the loader."""

    mlflow_tracking_uri: str = "http://mlflow-server:5000"
    mlflow_s3_endpoint_url: str | None = None
    mlflow_experiment_name: str = "model"
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_default_region: str = "us-east-1"

    model_name: str = "model"
    model_alias: str = "champion"
    model_dir: Path = Path("/models")
    train_if_missing: bool = True

    # Startup: how long one attempt may back off at most, and when to stop trying MLflow and
    # fall back to a cached model (the loop keeps polling afterwards).
    startup_backoff_max: float = Field(default=15.0, gt=0)
    startup_wait_seconds: float = Field(default=120.0, ge=0)
    # How often MLflow is asked which version the alias points at (a model registered while the
    # service waits for one, or a new champion, is served within this delay; no restart).
    model_poll_seconds: float = Field(default=30.0, gt=0)

    @property
    def model_ref(self) -> str:
        """``MODEL_NAME@MODEL_ALIAS``."""
        return f"{self.model_name}@{self.model_alias}"

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
