"""MLflow side of the model: train + log (per epoch) + register + alias, and fetch the champion
into the local cache (``MODEL_DIR/<name>/<version>/``) to load it from there."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import keras
import mlflow
import mlflow.tensorflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from app.cifar import ORIGIN, SIDE, Cifar10, DatasetError, download_cifar10, load_cifar10
from app.config import Settings
from app.model import Hyperparams, fit

log = logging.getLogger(__name__)

META_FILE = "meta.json"
# MLflow error codes meaning "no such registered model / alias" (not "server down").
_MISSING_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class NoModelError(LookupError):
    """No model version carries the alias (and training was not allowed or possible)."""


@dataclass(frozen=True)
class ModelInfo:
    """Which registered model version is served, and how it scored when trained."""

    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    source: str = "registry"  # "registry" | "cache" (MLflow unreachable at startup)
    class_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict."""

    info: ModelInfo
    model: keras.Model


def client_for(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking server (also made the fluent API's default)."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def hyperparams(settings: Settings) -> Hyperparams:
    """Training hyper-parameters from the settings."""
    return Hyperparams(epochs=settings.epochs, batch_size=settings.batch_size,
                       learning_rate=settings.learning_rate, train_limit=settings.train_limit,
                       seed=settings.seed)


def dataset(settings: Settings) -> Cifar10:
    """CIFAR10_DIR if set, else keras' download into MODEL_DIR/datasets."""
    if settings.cifar10_dir is not None:
        return load_cifar10(settings.cifar10_dir)
    log.info("CIFAR10_DIR unset: downloading the archive with keras")
    _check_reachable(ORIGIN)
    try:
        return load_cifar10(download_cifar10(settings.model_dir))
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - keras wraps network errors in several types
        raise DatasetError(f"CIFAR10_DIR is not set and downloading {ORIGIN} failed: "
                           f"{type(exc).__name__}: {exc}") from exc


def _check_reachable(url: str, timeout: float = 10.0) -> None:
    """Fail fast (DatasetError) when the download host cannot be reached: keras' downloader
    has no timeout, and an offline service would hang in it instead of waiting for a model."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise DatasetError(f"CIFAR10_DIR is not set and {parts.hostname} is not reachable "
                           f"({exc.strerror or exc}): no data set to train on") from exc


def signature(n_classes: int) -> ModelSignature:
    """Batches of 32x32 RGB pixels (0..255) in, class probabilities out.

    Written out rather than inferred: inference from arrays silently degrades to an untyped
    schema in some installs (seen with mlflow-skinny), which the tensorflow flavor then refuses.
    """
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, SIDE, SIDE, 3), "image")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, n_classes), "probabilities")]),
    )


def train_and_register(settings: Settings) -> ModelInfo:
    """Train, log params / per-epoch metrics / the Keras model, register a new version of
    ``MODEL_NAME`` and point ``MODEL_ALIAS`` at it."""
    data = dataset(settings)
    hp = hyperparams(settings)
    client = client_for(settings)
    mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(run_name=f"{settings.model_name}-train") as run:
        mlflow.log_params({**asdict(hp), "n_classes": len(data.class_names)})

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=epoch)

        trained = fit(data, hp, on_epoch)
        mlflow.log_params({"n_train": trained.n_train, "n_test": trained.n_test})
        mlflow.log_metrics(trained.metrics)
        logged = mlflow.tensorflow.log_model(
            trained.model,
            name="model",
            registered_model_name=settings.model_name,
            signature=signature(len(data.class_names)),
            metadata={"class_names": data.class_names},
            # Given explicitly: inferring them starts a subprocess that re-imports the model.
            pip_requirements=[f"tensorflow-cpu=={dist_version('tensorflow-cpu')}",
                              f"keras=={keras.__version__}"],
        )
    version = str(logged.registered_model_version)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, version)
    log.info("trained %s version %s (run %s): %s", settings.model_name, version,
             run.info.run_id, _fmt(trained.metrics))
    return ModelInfo(settings.model_name, version, settings.model_alias, run.info.run_id,
                     trained.metrics, class_names=data.class_names)


def champion(settings: Settings, client: MlflowClient) -> ModelInfo | None:
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


def fetch(settings: Settings, info: ModelInfo) -> Path:
    """The cached directory of this version, downloading it from MLflow on a miss (into a
    temporary sibling renamed into place: a crash never leaves a half-written entry)."""
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
        names = (Model.load(str(tmp / "model")).metadata or {}).get("class_names") or []
        meta = {**asdict(info), "class_names": list(names)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if target.exists():  # a stale entry without meta.json
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_cached(path: Path, source: str = "registry") -> LoadedModel:
    """Load a cache entry written by :func:`fetch`."""
    meta: dict[str, Any] = json.loads((path / META_FILE).read_text())
    meta["source"] = source
    info = ModelInfo(**meta)
    model = mlflow.tensorflow.load_model(str(path / "model"))
    classes = int(model.output_shape[-1])
    if len(info.class_names) != classes:
        raise NoModelError(f"{path}: the model has {classes} outputs but its metadata names "
                           f"{len(info.class_names)} classes")
    return LoadedModel(info, model)


def latest_cached(settings: Settings) -> Path | None:
    """The highest cached version of ``MODEL_NAME`` (for when MLflow stays unreachable)."""
    base = settings.model_dir / settings.model_name
    if not base.is_dir():
        return None
    entries = [p for p in base.iterdir() if p.name.isdigit() and (p / META_FILE).is_file()]
    return max(entries, key=lambda p: int(p.name), default=None)


def register_hint(settings: Settings) -> str:
    """How an operator gives this service a model (shown while it waits for one)."""
    ref = f"{settings.model_name}@{settings.model_alias}"
    return (f"train and register {ref}: run `python -m app.train` with CIFAR10_DIR set to a "
            "folder holding cifar-10-batches-py (the official python archive) and this "
            "service's MLFLOW_TRACKING_URI / S3 settings, or point the alias at an existing "
            f"version in MLflow; it is loaded within {settings.model_poll_seconds:g} s, no "
            "restart needed")


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
