"""Helpers of the service tests (imported by the test modules; fixtures are in conftest.py)."""

from __future__ import annotations

import importlib
import os
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from svcutil import PACKAGES, REPO, SERVICES, pythonpath

__all__ = ["CLASSES", "PALETTE", "REPO", "SERVICES", "colour_images", "python_env",
           "s3_keys_ending", "service_app", "wait_for", "write_colour_archive"]

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
# One distinct colour per class: a trivially separable set (a real CNN must still learn it).
PALETTE = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [128, 128, 128], [0, 0, 0],
], dtype=np.int16)


@contextmanager
def service_app(service: str, *modules: str) -> Iterator[dict[str, types.ModuleType]]:
    """The modules ``<package>.<module>`` of ``services/<service>`` by name (each service's
    package is named after it, so they import side by side: nothing is moved aside)."""
    yield {m: importlib.import_module(f"{PACKAGES[service]}.{m}") for m in modules}


def s3_keys_ending(s3_client: Any, bucket: str, suffix: str) -> list[str]:
    """Keys in ``bucket`` ending with ``suffix``."""
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix))
    return keys


def wait_for(probe: Callable[[], Any], ok: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``probe`` until ``ok(result)`` or ``timeout`` seconds pass; the last result."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(0.5)
        result = probe()
    return result


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra`` (for service subprocesses), with the
    services' import paths on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath(env)
    env.update(extra)
    return env


def colour_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """32x32 images of each label's colour plus noise."""
    base = PALETTE[labels][:, None, None, :]
    noise = rng.integers(-20, 21, size=(len(labels), 32, 32, 3))
    images: np.ndarray = np.clip(base + noise, 0, 255).astype(np.uint8)
    return images


def write_colour_archive(cifar: types.ModuleType, parent: Path, per_batch: int) -> Path:
    """``parent/cifar-10-batches-py`` in the official pickle format (written with the service's
    own writer), 5 x ``per_batch`` training and 100 test images of the PALETTE colours."""
    root = parent / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(7)
    for i in range(1, 6):
        labels = rng.integers(0, 10, size=per_batch)
        cifar.write_batch(root / f"data_batch_{i}", colour_images(labels, rng), labels.tolist(),
                          f"training batch {i} of 5")
    labels = np.arange(100) % 10
    cifar.write_batch(root / "test_batch", colour_images(labels, rng), labels.tolist(),
                      "testing batch 1 of 1")
    cifar.write_meta(root / "batches.meta", CLASSES, per_batch)
    return parent
