"""MLflow side of the model: train + log (per epoch) + register + alias, and fetch the champion
into the local cache (``MODEL_DIR/<name>/<version>/``) to load it from there."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import keras
import mlflow
import mlflow.tensorflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from app.cifar import SIDE, Cifar10, download_cifar10, load_cifar10
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
    return load_cifar10(download_cifar10(settings.model_dir))


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


def load_champion(settings: Settings, client: MlflowClient) -> LoadedModel:
    """Resolve the alias (training first if allowed and nothing is registered), fetch, load."""
    info = champion(settings, client)
    if info is None:
        if not settings.train_if_missing:
            raise NoModelError(
                f"no version of model {settings.model_name!r} has alias {settings.model_alias!r} "
                "and TRAIN_IF_MISSING is false: run `python -m app.train` or set the alias"
            )
        log.info("no %s@%s registered: training one", settings.model_name, settings.model_alias)
        info = train_and_register(settings)
    return load_cached(fetch(settings, info))


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
