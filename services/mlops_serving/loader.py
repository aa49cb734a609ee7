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

import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import tenacity

from mlops_serving.errors import DatasetError
from mlops_serving.registry import (
    Flavour,
    LoadedModel,
    champion,
    client_for,
    fetch,
    latest_cached,
    load_cached,
)
from mlops_serving.retry import backoff
from mlops_serving.settings import ModelServiceSettings

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
    model: LoadedModel[Any] | None
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

    def set(self, status: Status, detail: str, model: LoadedModel[Any] | None = None,
            fix: str | None = None) -> None:
        """Replace the snapshot; a loaded model is kept unless a new one is given."""
        with self._lock:
            self._snap = Snapshot(status, detail, model or self._snap.model, fix)


class _Loader:
    """One service's loop state: whether training is still worth trying, when it started."""

    def __init__(self, settings: ModelServiceSettings, state: ModelState,
                 flavour: Flavour[Any]) -> None:
        self.settings = settings
        self.state = state
        self.flavour = flavour
        self.may_train = settings.train_if_missing
        self.started = time.monotonic()

    def poll(self) -> None:
        """One look at the alias: train, wait, or (re)load as needed. MLflow/S3 failures
        propagate (the caller backs off and retries)."""
        settings, ref = self.settings, self.settings.model_ref
        served = self.state.get().model
        try:
            info = champion(settings, client_for(settings))
            if info is None and served is None and self.may_train:
                self.state.set("training", f"no {ref} registered: training one")
                log.info("no %s registered: training one", ref)
                info = self.flavour.train_and_register(settings)
        except DatasetError as exc:
            # No data (or unusable data): retrying the same training cannot help; a champion
            # registered from elsewhere still can.
            self.may_train = False
            log.error("training failed: %s", exc)
            if served is None:
                self._wait_for_model(f"no {ref} registered, and training one failed: {exc}")
            return
        if info is None:
            if served is None:
                why = ("TRAIN_IF_MISSING is false" if not settings.train_if_missing
                       else "training is not possible here")
                self._wait_for_model(f"no {ref} registered ({why})")
        elif served is None or (served.info.version, served.info.source) != (
            info.version, "registry"
        ):
            loaded = load_cached(self.flavour, fetch(settings, info))
            self.state.set("ready", f"serving {info.name} version {info.version}", loaded)
            settle_heap()
            log.info("serving %s version %s (%s)", info.name, info.version, ref)

    def on_retry(self, exc: BaseException, delay: float) -> None:
        """MLflow/S3 failed: say so (503 while nothing is served), fall back to the cache."""
        detail = f"waiting for MLflow/S3 at {self.settings.mlflow_tracking_uri}: {_short(exc)}"
        log.warning("%s (retry in %.0fs)", detail, delay)
        if self.state.get().model is None:
            self.state.set("starting", detail)
            if time.monotonic() - self.started >= self.settings.startup_wait_seconds:
                self._serve_cache()

    def _wait_for_model(self, detail: str) -> None:
        if self.state.get().status != "waiting-for-model":
            log.warning("%s; checking MLflow every %.0fs", detail,
                        self.settings.model_poll_seconds)
        self.state.set("waiting-for-model", detail, fix=self.flavour.register_hint(self.settings))

    def _serve_cache(self) -> None:
        path = latest_cached(self.settings)
        if path is None:
            return
        try:
            loaded = load_cached(self.flavour, path, source="cache")
        except Exception as exc:  # noqa: BLE001 - a broken cache entry: keep waiting for MLflow
            log.error("cached model %s unusable: %s", path, _short(exc))
            return
        self.state.set("ready",
                       f"serving cached version {loaded.info.version} (MLflow unreachable)", loaded)
        settle_heap()
        log.warning("MLflow unreachable: serving cached %s version %s", loaded.info.name,
                    loaded.info.version)


def settle_heap() -> None:
    """Collect once, then exempt everything alive from later cyclic collections (gc.freeze).

    The imports (MLflow, scikit-learn or TensorFlow, pandas) and the model leave a few hundred
    thousand long-lived objects; a full collection walks them all, and the allocations of a
    1000-row /predict set one off now and then: 200 ms at the p99 of those requests, 50 ms
    with the heap frozen (seen side by side). Frozen objects are still freed when no longer
    referenced; an earlier model's unreferenced cycles are collected here first (unfreeze)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def run_loader(settings: ModelServiceSettings, state: ModelState, stop: threading.Event,
               flavour: Flavour[Any]) -> None:
    """Serve the champion (training one first when allowed) and follow its alias until
    ``stop`` is set."""
    loader = _Loader(settings, state, flavour)
    # Any failure but bad data is MLflow/S3/network: retried with backoff.
    retrying = backoff(stop, settings.startup_backoff_max,
                       retry_on=lambda exc: isinstance(exc, Exception), on_retry=loader.on_retry)
    while not stop.is_set():
        try:
            retrying(loader.poll)
        except tenacity.RetryError:
            break  # stopped while backing off
        stop.wait(settings.model_poll_seconds)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
