"""Background model loading with retry: the API answers /health ("starting") while this runs.

Swarm ignores ``depends_on``, so MLflow and S3 may come up after this service: every attempt
that fails on a connection backs off (doubling, capped) and tries again. If MLflow stays
unreachable past ``STARTUP_WAIT_SECONDS`` and a cached model exists, that one is served.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from app.config import Settings
from app.data import DatasetError
from app.registry import (
    LoadedModel,
    NoModelError,
    client_for,
    latest_cached,
    load_cached,
    load_champion,
)

log = logging.getLogger(__name__)

Status = Literal["starting", "ready", "no-model", "error"]


@dataclass(frozen=True)
class Snapshot:
    """The loader's state at one moment."""

    status: Status
    detail: str
    model: LoadedModel | None


class ModelState:
    """Thread-safe holder of the served model and the loader's status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = Snapshot("starting", "loading the model", None)

    def get(self) -> Snapshot:
        """The current snapshot (immutable)."""
        with self._lock:
            return self._snap

    def set(self, status: Status, detail: str, model: LoadedModel | None = None) -> None:
        """Replace the snapshot; a loaded model is kept unless a new one is given."""
        with self._lock:
            self._snap = Snapshot(status, detail, model or self._snap.model)


def run_loader(settings: Settings, state: ModelState, stop: threading.Event) -> None:
    """Load (or train) the champion until it works or ``stop`` is set."""
    delay = 1.0
    started = time.monotonic()
    while not stop.is_set():
        try:
            loaded = load_champion(settings, client_for(settings))
        except NoModelError as exc:
            state.set("no-model", str(exc))
            log.warning("%s (checking again in %.0fs)", exc, settings.startup_backoff_max)
            delay = settings.startup_backoff_max
        except DatasetError as exc:
            state.set("error", f"training failed: {exc}")
            log.error("training failed: %s (checking the registry again in %.0fs)", exc,
                      settings.startup_backoff_max)
            delay = settings.startup_backoff_max
        except Exception as exc:  # noqa: BLE001 - MLflow/S3/network: any of these is retried
            detail = f"waiting for MLflow/S3 at {settings.mlflow_tracking_uri}: {_short(exc)}"
            state.set("starting", detail)
            log.warning("%s (retry in %.0fs)", detail, delay)
            if time.monotonic() - started >= settings.startup_wait_seconds and _serve_cache(
                settings, state
            ):
                return
        else:
            info = loaded.info
            state.set("ready", f"serving {info.name} version {info.version}", loaded)
            log.info("serving %s version %s (%s@%s)", info.name, info.version, info.name,
                     info.alias)
            return
        stop.wait(delay)
        delay = min(delay * 2, settings.startup_backoff_max)


def _serve_cache(settings: Settings, state: ModelState) -> bool:
    path = latest_cached(settings)
    if path is None:
        return False
    try:
        loaded = load_cached(path, source="cache")
    except Exception as exc:  # noqa: BLE001 - a broken cache entry: keep waiting for MLflow
        log.error("cached model %s unusable: %s", path, _short(exc))
        return False
    state.set("ready", f"serving cached version {loaded.info.version} (MLflow unreachable)",
              loaded)
    log.warning("MLflow unreachable: serving cached %s version %s", loaded.info.name,
                loaded.info.version)
    return True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
