"""The MLflow flavour of this service: train + log (per epoch) + register the Keras CNN, and
load a cached version with ``mlflow.tensorflow``, checked against its class names. The
registry lookup, cache and alias polling are :mod:`mlops_serving`'s."""

from __future__ import annotations

import logging
import socket
from dataclasses import asdict
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import keras
import mlflow
import mlflow.tensorflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from mlops_serving.errors import NoModelError
from mlops_serving.registry import ModelInfo, promote, train_hint, training_run

from cnn_image.cifar import ORIGIN, SIDE, Cifar10, DatasetError, download_cifar10, load_cifar10
from cnn_image.config import Settings
from cnn_image.model import Hyperparams, fit

log = logging.getLogger(__name__)


#: What the outputs of a version trained here are (its last layer is a softmax).
TRAINED_OUTPUTS = "the trained CNN's softmax layer"


def class_names(info: ModelInfo) -> list[str]:
    """The classes of a version, in output order (logged as the model's metadata)."""
    return [str(n) for n in info.metadata.get("class_names") or []]


def outputs(info: ModelInfo) -> str:
    """What the served probabilities are (``cnn_image.register`` logs it for a file trained
    elsewhere; older versions trained here did not)."""
    return str(info.metadata.get("outputs") or TRAINED_OUTPUTS)


def provenance(info: ModelInfo) -> dict[str, str]:
    """Source, file hash, licence, input scaling of a registered file (empty when trained
    here: the training run is the provenance)."""
    return {str(k): str(v) for k, v in (info.metadata.get("provenance") or {}).items()}


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


class Cifar10Cnn:
    """The :class:`mlops_serving.registry.Flavour` of the CIFAR-10 CNN."""

    def train_and_register(self, settings: Settings) -> ModelInfo:
        """Train, log params / per-epoch metrics / the Keras model, register a new version of
        ``MODEL_NAME`` and point ``MODEL_ALIAS`` at it."""
        data = dataset(settings)
        hp = hyperparams(settings)
        with training_run(settings) as (client, run):
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
                metadata={"class_names": data.class_names, "outputs": TRAINED_OUTPUTS},
                # Given explicitly: inferring them starts a subprocess that re-imports the model.
                pip_requirements=[f"tensorflow-cpu=={dist_version('tensorflow-cpu')}",
                                  f"keras=={keras.__version__}"],
            )
        return promote(settings, client, run, logged.registered_model_version, trained.metrics,
                       metadata={"class_names": data.class_names, "outputs": TRAINED_OUTPUTS})

    def load(self, path: Path, info: ModelInfo) -> Any:
        """The Keras model saved in ``path``; its outputs must match the logged class names."""
        model = mlflow.tensorflow.load_model(str(path))
        classes = int(model.output_shape[-1])
        if len(class_names(info)) != classes:
            raise NoModelError(f"{path.parent}: the model has {classes} outputs but its metadata "
                               f"names {len(class_names(info))} classes")
        return model

    def register_hint(self, settings: Settings) -> str:
        """How an operator gives this service a model (shown while it waits for one)."""
        return (train_hint(settings, "cnn_image.train",
                           "CIFAR10_DIR set to a folder holding cifar-10-batches-py (the "
                           "official python archive)")
                + "; or register a trained Keras file: `python -m cnn_image.register FILE "
                  "--alias " + settings.model_alias + " --outputs logits|probabilities "
                  "--input-scaling 0-255|0-1 --source WHERE --licence LICENCE`")


FLAVOUR = Cifar10Cnn()
