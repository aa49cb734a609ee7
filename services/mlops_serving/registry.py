"""MLflow side of a model service: which version the alias points at, a local cache of
versions (``MODEL_DIR/<name>/<version>/``), and the start and end of a training run.

What is a service's own (how to train, log and load its kind of model) comes in as a
:class:`Flavour`; everything here works the same for any MLflow flavour.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from mlops_serving.errors import DatasetError, NoModelError
from mlops_serving.settings import ModelServiceSettings

__all__ = [
    "DatasetError", "Flavour", "LoadedModel", "ModelInfo", "NoModelError", "champion",
    "client_for", "fetch", "fmt_metrics", "latest_cached", "load_cached", "promote",
    "train_hint", "training_run",
]

log = logging.getLogger(__name__)

META_FILE = "meta.json"
# MLflow error codes meaning "no such registered model / alias" (not "server down").
_MISSING_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}

M = TypeVar("M")
S_contra = TypeVar("S_contra", bound=ModelServiceSettings, contravariant=True)


@dataclass(frozen=True)
class ModelInfo:
    """Which registered model version is served, and how it scored when trained.

    ``metadata`` is the logged model's own (MLmodel ``metadata``, e.g. a classifier's class
    names), kept with the cache entry.
    """

    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    source: str = "registry"  # "registry" | "cache" (MLflow unreachable at startup)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], source: str) -> ModelInfo:
        """From a cache entry's ``meta.json``; unknown keys (an older layout that kept the
        metadata at the top level) are read as metadata."""
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in meta.items() if k not in known}
        base = {k: v for k, v in meta.items() if k in known}
        base["metadata"] = {**extra, **dict(base.get("metadata") or {})}
        base["source"] = source
        return cls(**base)


@dataclass(frozen=True)
class LoadedModel(Generic[M]):
    """A model ready to predict, and which version it is."""

    info: ModelInfo
    model: M


class Flavour(Protocol[S_contra]):
    """What a model service brings: training and loading of its kind of model."""

    def train_and_register(self, settings: S_contra) -> ModelInfo:
        """Train on the service's data, log and register a version, point the alias at it.

        Raises a :class:`DatasetError` when there is no usable data."""

    def load(self, path: Path, info: ModelInfo) -> Any:
        """The model saved (by MLflow) in ``path``; :class:`NoModelError` if it is unusable."""

    def register_hint(self, settings: S_contra) -> str:
        """How an operator gives the service a model (shown while it waits for one)."""


def client_for(settings: ModelServiceSettings) -> MlflowClient:
    """An MLflow client on the configured tracking server (also made the fluent API's default)."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def champion(settings: ModelServiceSettings, client: MlflowClient) -> ModelInfo | None:
    """The version the alias points at, or None if the model or alias does not exist.

    Connection failures propagate (the caller retries).
    """
    try:
        mv = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    except MlflowException as exc:
        if exc.error_code in _MISSING_CODES:
            return None
        raise
    run_id = mv.run_id or ""
    metrics = dict(client.get_run(run_id).data.metrics) if run_id else {}
    return ModelInfo(settings.model_name, str(mv.version), settings.model_alias, run_id, metrics)


def fetch(settings: ModelServiceSettings, info: ModelInfo) -> Path:
    """The cached directory of this version, downloading it from MLflow on a miss.

    The download goes to a temporary sibling that is renamed into place, so a crash never
    leaves a half-written cache entry. The logged model's metadata is kept in ``meta.json``.
    """
    target = settings.model_dir / info.name / info.version
    if (target / META_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{info.name}/{info.version}",
            dst_path=str(tmp / "model"),
            tracking_uri=settings.mlflow_tracking_uri,
        )
        metadata = dict(Model.load(str(tmp / "model")).metadata or {})
        meta = {**asdict(info), "metadata": metadata}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if target.exists():  # a stale entry without meta.json
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_cached(flavour: Flavour[Any], path: Path, source: str = "registry") -> LoadedModel[Any]:
    """Load a cache entry written by :func:`fetch` with the service's flavour."""
    info = ModelInfo.from_meta(json.loads((path / META_FILE).read_text()), source)
    return LoadedModel(info, flavour.load(path / "model", info))


def latest_cached(settings: ModelServiceSettings) -> Path | None:
    """The highest cached version of ``MODEL_NAME`` (for when MLflow stays unreachable)."""
    base = settings.model_dir / settings.model_name
    if not base.is_dir():
        return None
    entries = [p for p in base.iterdir() if p.name.isdigit() and (p / META_FILE).is_file()]
    return max(entries, key=lambda p: int(p.name), default=None)


@contextmanager
def training_run(settings: ModelServiceSettings) -> Iterator[tuple[MlflowClient, Run]]:
    """An MLflow run named ``<MODEL_NAME>-train`` in ``MLFLOW_EXPERIMENT_NAME``."""
    client = client_for(settings)
    mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(run_name=f"{settings.model_name}-train") as run:
        yield client, run


def promote(settings: ModelServiceSettings, client: MlflowClient, run: Run, version: object,
            metrics: dict[str, float], metadata: Mapping[str, Any] | None = None) -> ModelInfo:
    """Point ``MODEL_ALIAS`` at the freshly registered ``version``; what is now served."""
    version = str(version)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, version)
    log.info("trained %s version %s (run %s): %s", settings.model_name, version,
             run.info.run_id, fmt_metrics(metrics))
    return ModelInfo(settings.model_name, version, settings.model_alias, run.info.run_id,
                     metrics, metadata=dict(metadata or {}))


def train_hint(settings: ModelServiceSettings, module: str, data: str) -> str:
    """The fix shown while a service waits for a model: how to train and register one."""
    return (f"train and register {settings.model_ref}: run `python -m {module}` with {data} and "
            "this service's MLFLOW_TRACKING_URI / S3 settings, or point the alias at an "
            f"existing version in MLflow; it is loaded within {settings.model_poll_seconds:g} s, "
            "no restart needed")


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    """``a=0.812, b=0.700`` (sorted by name)."""
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
