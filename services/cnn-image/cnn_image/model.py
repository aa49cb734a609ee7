"""The CNN (two conv blocks + a small dense head), its training with per-epoch progress, and
image preprocessing for prediction."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from cnn_image.cifar import SIDE, Cifar10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparams:
    """What a training run varies (logged as MLflow params)."""

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    train_limit: int | None = 10_000
    seed: int = 42


@dataclass(frozen=True)
class Trained:
    """A fitted model, its test metrics and per-epoch history."""

    model: keras.Model
    metrics: dict[str, float]
    history: dict[str, list[float]]
    n_train: int
    n_test: int


class ImageError(ValueError):
    """The upload is not a decodable image."""


def build_cnn(num_classes: int) -> keras.Model:
    """Conv(32) -> pool -> Conv(64) -> pool -> dense(64) -> softmax; takes 0..255 RGB pixels."""
    return keras.Sequential([
        keras.Input(shape=(SIDE, SIDE, 3)),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="cifar10_cnn")


class EpochProgress(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Logs each finished epoch and hands its metrics to ``on_epoch`` (e.g. MLflow)."""

    def __init__(self, epochs: int, on_epoch: Callable[[int, dict[str, float]], None]) -> None:
        super().__init__()
        self.epochs = epochs
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        log.info("epoch %d/%d: %s", epoch + 1, self.epochs,
                 ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
        self.on_epoch(epoch, metrics)


def fit(data: Cifar10, hp: Hyperparams,
        on_epoch: Callable[[int, dict[str, float]], None]) -> Trained:
    """Train on (a seeded subset of) the train split, evaluate on the test split."""
    keras.utils.set_random_seed(hp.seed)
    x, y = data.x_train, data.y_train
    if hp.train_limit is not None and hp.train_limit < len(x):
        pick = np.random.default_rng(hp.seed).permutation(len(x))[: hp.train_limit]
        x, y = x[pick], y[pick]
    model = build_cnn(len(data.class_names))
    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x.astype("float32"), y, epochs=hp.epochs, batch_size=hp.batch_size,
                        validation_data=(data.x_test.astype("float32"), data.y_test),
                        callbacks=[EpochProgress(hp.epochs, on_epoch)], verbose=0)
    loss, accuracy = model.evaluate(data.x_test.astype("float32"), data.y_test, verbose=0)
    return Trained(model, {"test_loss": float(loss), "test_accuracy": float(accuracy)},
                   {k: [float(v) for v in vs] for k, vs in history.history.items()},
                   len(x), len(data.x_test))


#: Largest image decoded (pixels). The CNN sees 32x32; a bigger picture than a large photo is a
#: mistake or a decompression bomb (a few KB of PNG that decode to gigabytes).
MAX_PIXELS = 6000 * 6000


def image_to_input(raw: bytes) -> np.ndarray:
    """Any image file (PNG, JPEG, ... up to MAX_PIXELS) -> (1, 32, 32, 3) float32 RGB pixels
    0..255."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size  # from the header: nothing decoded yet
            if width * height > MAX_PIXELS:
                raise ImageError(f"the image is {width}x{height} pixels; at most {MAX_PIXELS} "
                                 "are decoded (scale it down first)")
            img.load()
            rgb = img.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    except Image.DecompressionBombError as exc:  # PIL refused the header's size by itself
        raise ImageError(f"the image is too large to decode ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"could not decode the upload as an image ({exc})") from exc
    return np.asarray(rgb, dtype="float32")[np.newaxis]


def top_k(probabilities: np.ndarray, class_names: list[str], k: int) -> list[tuple[str, float]]:
    """The k most likely classes with their probabilities, most likely first."""
    order = np.argsort(probabilities)[::-1][:k]
    return [(class_names[i], float(probabilities[i])) for i in order]
