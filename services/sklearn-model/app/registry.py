"""MLflow side of the model: train + log + register + alias, and fetch the champion into the
local cache (``MODEL_DIR/<name>/<version>/``) to load it from there."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from app.config import Settings
from app.data import load_titanic
from app.model import Hyperparams, fit, survival_probability

log = logging.getLogger(__name__)

# skops refuses types it does not know: the forest's trees, and numpy dtypes the fitted
# imputers/encoder keep (both plain data, no code).
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", "numpy.dtype"]
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


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict."""

    info: ModelInfo
    pipeline: Pipeline


def client_for(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking server (also made the fluent API's default)."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def hyperparams(settings: Settings) -> Hyperparams:
    """Training hyper-parameters from the settings."""
    return Hyperparams(
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        test_size=settings.test_size,
        random_state=settings.random_state,
    )


def train_and_register(settings: Settings) -> ModelInfo:
    """Train on ``TITANIC_CSV``, log params/metrics/model (skops), register a new version of
    ``MODEL_NAME`` and point ``MODEL_ALIAS`` at it."""
    x, y = load_titanic(settings.titanic_csv)
    hp = hyperparams(settings)
    client = client_for(settings)
    mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(run_name=f"{settings.model_name}-train") as run:
        mlflow.log_params({**asdict(hp), "rows": len(x), "features": ",".join(x.columns)})
        trained = fit(x, y, hp)
        mlflow.log_params({"n_train": trained.n_train, "n_test": trained.n_test})
        mlflow.log_metrics(trained.metrics)
        example = x.head(5)
        logged = mlflow.sklearn.log_model(
            trained.pipeline,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=settings.model_name,
            signature=infer_signature(example, survival_probability(trained.pipeline, example)),
            input_example=example,
            # Given explicitly: inferring them starts a subprocess that re-imports the model.
            pip_requirements=_requirements(),
        )
    version = str(logged.registered_model_version)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, version)
    log.info("trained %s version %s (run %s): %s", settings.model_name, version,
             run.info.run_id, _fmt(trained.metrics))
    return ModelInfo(settings.model_name, version, settings.model_alias, run.info.run_id,
                     trained.metrics)


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
    """The cached directory of this version, downloading it from MLflow on a miss.

    The download goes to a temporary sibling that is renamed into place, so a crash never
    leaves a half-written cache entry.
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
        (tmp / META_FILE).write_text(json.dumps(asdict(info), indent=2))
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
    pipeline = mlflow.sklearn.load_model(str(path / "model"))
    return LoadedModel(ModelInfo(**meta), pipeline)


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
    return (f"train and register {ref}: run `python -m app.train` with TITANIC_CSV set to "
            "Kaggle's Titanic train.csv (the image ships one at /opt/data/titanic.csv) and this "
            "service's MLFLOW_TRACKING_URI / S3 settings, or point the alias at an existing "
            f"version in MLflow; it is loaded within {settings.model_poll_seconds:g} s, no "
            "restart needed")


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("scikit-learn", "skops", "pandas", "numpy")]


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
