"""Background model loading: the API answers /health from the first second while this runs.

The loop resolves ``MODEL_NAME@MODEL_ALIAS`` in MLflow and serves that version, and keeps
polling it (every ``MODEL_POLL_SECONDS``) for the whole life of the process:

- nothing registered yet: train one if allowed and possible (``TRAIN_IF_MISSING``, the data set
  is there); otherwise wait for someone to register one (status ``waiting-for-model``: healthy
  for Swarm, since a restart cannot help, but /predict answers 503 saying how to register one)
  and load it as soon as it appears, without a restart;
- the alias moves to another version: fetch and serve that one;
- MLflow or S3 unreachable (Swarm ignores ``depends_on``, so they may come up after this
  service): back off (doubling, capped) and try again; before a first model is loaded this is
  ``starting`` (503). If it lasts past ``STARTUP_WAIT_SECONDS`` and a cached model exists, that
  one is served meanwhile.
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
    champion,
    client_for,
    fetch,
    latest_cached,
    load_cached,
    register_hint,
    train_and_register,
)

log = logging.getLogger(__name__)

#: ``starting``: MLflow/S3 not reached yet (503); ``training``: training a first model (200);
#: ``waiting-for-model``: nothing registered and no training possible (200, /predict 503);
#: ``ready``: serving a model (200).
Status = Literal["starting", "training", "waiting-for-model", "ready"]
HEALTHY: frozenset[str] = frozenset({"training", "waiting-for-model", "ready"})


@dataclass(frozen=True)
class Snapshot:
    """The loader's state at one moment."""

    status: Status
    detail: str
    model: LoadedModel | None
    fix: str | None = None  # what an operator can do (set while there is no model)


class ModelState:
    """Thread-safe holder of the served model and the loader's status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = Snapshot("starting", "loading the model", None)

    def get(self) -> Snapshot:
        """The current snapshot (immutable)."""
        with self._lock:
            return self._snap

    def set(self, status: Status, detail: str, model: LoadedModel | None = None,
            fix: str | None = None) -> None:
        """Replace the snapshot; a loaded model is kept unless a new one is given."""
        with self._lock:
            self._snap = Snapshot(status, detail, model or self._snap.model, fix)


def run_loader(settings: Settings, state: ModelState, stop: threading.Event) -> None:
    """Serve the champion (training one first when allowed) and follow its alias until
    ``stop`` is set."""
    ref = f"{settings.model_name}@{settings.model_alias}"
    may_train = settings.train_if_missing
    delay = 1.0
    started = time.monotonic()
    while not stop.is_set():
        served = state.get().model
        try:
            client = client_for(settings)
            info = champion(settings, client)
            if info is None and served is None and may_train:
                state.set("training", f"no {ref} registered: training one")
                log.info("no %s registered: training one", ref)
                info = train_and_register(settings)
            if info is None:
                if served is None:
                    why = ("TRAIN_IF_MISSING is false" if not settings.train_if_missing
                           else "training is not possible here")
                    _wait_for_model(settings, state, f"no {ref} registered ({why})")
            elif served is None or (served.info.version, served.info.source) != (
                info.version, "registry"
            ):
                loaded = load_cached(fetch(settings, info))
                state.set("ready", f"serving {info.name} version {info.version}", loaded)
                log.info("serving %s version %s (%s)", info.name, info.version, ref)
            delay = settings.model_poll_seconds
        except DatasetError as exc:
            # No data (or unusable data): retrying the same training cannot help; a champion
            # registered from elsewhere still can.
            may_train = False
            log.error("training failed: %s", exc)
            if served is None:
                _wait_for_model(settings, state,
                                f"no {ref} registered, and training one failed: {exc}")
            delay = settings.model_poll_seconds
        except Exception as exc:  # noqa: BLE001 - MLflow/S3/network: any of these is retried
            detail = f"waiting for MLflow/S3 at {settings.mlflow_tracking_uri}: {_short(exc)}"
            log.warning("%s (retry in %.0fs)", detail, delay)
            if served is None:
                state.set("starting", detail)
                if time.monotonic() - started >= settings.startup_wait_seconds:
                    _serve_cache(settings, state)
            delay = min(delay * 2, settings.startup_backoff_max)
        stop.wait(delay)


def _wait_for_model(settings: Settings, state: ModelState, detail: str) -> None:
    if state.get().status != "waiting-for-model":
        log.warning("%s; checking MLflow every %.0fs", detail, settings.model_poll_seconds)
    state.set("waiting-for-model", detail, fix=register_hint(settings))


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
