"""The official CIFAR-10 "python version" archive (``cifar-10-batches-py``): ``data_batch_1``
to ``data_batch_5``, ``test_batch`` and ``batches.meta``, each a pickled dict.

Pickle can run code on load, so the files are read with an unpickler that only resolves the
few numpy names an array needs; anything else is refused with the file's name.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlops_serving.errors import DatasetError as _DatasetError

ARCHIVE_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
SIDE = 32

# What a pickled numpy array may reference (numpy 1.x and 2.x module paths), plus the codec
# call protocol 2 uses for bytes written by Python 3 (it only encodes a string).
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class DatasetError(_DatasetError):
    """The directory is not a CIFAR-10 python archive; the message names the file."""


@dataclass(frozen=True)
class Cifar10:
    """Images (N, 32, 32, 3) uint8, labels (N,) int64, and the class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of the format)")


def _unpickle(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected the files of {ARCHIVE_DIR}: "
                           f"{', '.join((*TRAIN_BATCHES, TEST_BATCH, META))})")
    try:
        # The archive was written by Python 2: str keys come back as bytes.
        obj = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images (N, 32, 32, 3) uint8 and labels (N,) int64."""
    batch = _unpickle(path)
    for key in (b"data", b"labels"):
        if key not in batch:
            raise DatasetError(f"{path}: no {key.decode()!r} entry")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DatasetError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
    if data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): to (N, H, W, C).
    images = data.astype(np.uint8).reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _archive_root(directory: Path) -> Path:
    nested = directory / ARCHIVE_DIR
    return nested if nested.is_dir() else directory


def load_cifar10(directory: Path) -> Cifar10:
    """Read the archive from ``directory`` (``cifar-10-batches-py`` itself, or its parent)."""
    if not directory.is_dir():
        raise DatasetError(f"{directory}: no such directory (set CIFAR10_DIR to the extracted "
                           f"{ARCHIVE_DIR} folder)")
    root = _archive_root(directory)
    meta = _unpickle(root / META)
    if b"label_names" not in meta:
        raise DatasetError(f"{root / META}: no 'label_names' entry")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    parts = [load_batch(root / name) for name in TRAIN_BATCHES]
    x_test, y_test = load_batch(root / TEST_BATCH)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for split, labels in (("train", y_train), ("test", y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DatasetError(f"{root}: {split} labels outside 0..{len(names) - 1}")
    return Cifar10(x_train, y_train, x_test, y_test, names)


def download_cifar10(cache_dir: Path) -> Path:
    """Fetch and extract the archive with keras' downloader (for users online); its folder."""
    import keras  # heavy import, only on this path

    path = keras.utils.get_file(
        fname="cifar-10-batches-py-target", origin=ORIGIN, extract=True,
        cache_dir=str(cache_dir), cache_subdir="datasets", file_hash=ARCHIVE_SHA256,
    )
    return _archive_root(Path(path))


def write_batch(path: Path, images: np.ndarray, labels: list[int], label: str) -> None:
    """Write images (N, 32, 32, 3) uint8 as one batch file in the official layout."""
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))
    batch = {b"batch_label": label.encode(), b"labels": list(labels), b"data": data,
             b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(images))]}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_meta(path: Path, class_names: list[str], per_batch: int) -> None:
    """Write ``batches.meta`` in the official layout."""
    meta = {b"label_names": [n.encode() for n in class_names],
            b"num_cases_per_batch": per_batch, b"num_vis": 3 * SIDE * SIDE}
    path.write_bytes(pickle.dumps(meta, protocol=2))
