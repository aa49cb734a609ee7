"""Helpers of the service tests (imported by the test modules; fixtures are in conftest.py)."""

from __future__ import annotations

import importlib
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"


@contextmanager
def service_app(service: str, *modules: str) -> Iterator[dict[str, types.ModuleType]]:
    """Import ``app.<module>`` of ``services/<service>`` (each service has its own ``app``
    package, so the others' are moved aside and put back afterwards)."""
    path = str(SERVICES / service)

    def _ours() -> dict[str, types.ModuleType]:
        return {k: v for k, v in sys.modules.items() if k == "app" or k.startswith("app.")}

    saved = _ours()
    for key in saved:
        del sys.modules[key]
    sys.path.insert(0, path)
    try:
        yield {m: importlib.import_module(f"app.{m}") for m in modules}
    finally:
        sys.path.remove(path)
        for key in _ours():
            del sys.modules[key]
        sys.modules.update(saved)


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
    """This process's environment plus ``extra`` (for service subprocesses)."""
    env = dict(os.environ)
    env.update(extra)
    return env
