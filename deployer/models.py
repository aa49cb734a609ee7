"""The stack's models as facts: what the MLflow registry holds (versions, aliases, their runs'
metrics) and what each model service serves now (its ``GET /model``).

Pure parsing of MLflow's REST answers and the services' JSON; the requests go through a
``Fetch`` the caller gives (``deployer.connectors.http.request`` over the stack's connector).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from deployer.errors import DeployError

#: The services that serve a registered model, and the model each serves by default.
MODEL_SERVICES: Mapping[str, str] = {"sklearn-model": "titanic-rf", "cnn-image": "cifar10-cnn"}
#: The alias the services load.
CHAMPION = "champion"
#: Versions listed per model (newest first).
MAX_VERSIONS = 20

#: ``(method, path, json body or None) -> (HTTP status, decoded JSON)``.
Fetch = Callable[[str, str, Any], tuple[int, Any]]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: str
    run_id: str
    created: datetime
    aliases: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    status: str = "READY"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    versions: tuple[ModelVersion, ...]
    #: alias -> version
    aliases: Mapping[str, str] = field(default_factory=dict)

    def version(self, number: str) -> ModelVersion | None:
        return next((v for v in self.versions if v.version == number), None)


@dataclass(frozen=True)
class ServedModel:
    """What one model service answers on ``GET /model`` (or why it does not)."""

    service: str
    name: str = ""
    version: str = ""
    alias: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: Empty when serving; else the service's own reason (``waiting-for-model``, unreachable).
    problem: str = ""


def _millis(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, tz=UTC)


def _checked(answer: tuple[int, Any], what: str) -> Any:
    status, data = answer
    if status >= 400:
        message = data.get("message") if isinstance(data, dict) else None
        raise DeployError(f"MLflow refused {what}: HTTP {status} {message or ''}".rstrip(),
                          fix="check the model name and version (`deployer models`)")
    return data


def parse_versions(name: str, data: Any, aliases: Mapping[str, str],
                   metrics: Mapping[str, Mapping[str, float]]) -> tuple[ModelVersion, ...]:
    """``model-versions/search`` JSON -> versions, newest first, with aliases and metrics."""
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    found = []
    for item in (data or {}).get("model_versions") or []:
        version = str(item.get("version", ""))
        run_id = str(item.get("run_id") or "")
        found.append(ModelVersion(name, version, run_id, _millis(item.get("creation_timestamp")),
                                  tuple(sorted(by_version.get(version, []))),
                                  dict(metrics.get(run_id, {})), str(item.get("status", ""))))
    return tuple(sorted(found, key=lambda v: int(v.version) if v.version.isdigit() else 0,
                        reverse=True))


def parse_aliases(data: Any) -> dict[str, str]:
    """``registered-models/get`` JSON -> alias -> version."""
    model = (data or {}).get("registered_model") or {}
    return {str(a["alias"]): str(a["version"]) for a in model.get("aliases") or []}


def parse_metrics(data: Any) -> dict[str, float]:
    """``runs/get`` JSON -> the run's latest metrics."""
    run = (data or {}).get("run") or {}
    metrics = ((run.get("data") or {}).get("metrics")) or []
    out: dict[str, float] = {}
    for item in metrics:
        try:
            out[str(item["key"])] = float(item["value"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def read_registered(
    fetch: Fetch, name: str, known_runs: dict[str, dict[str, float]] | None = None
) -> RegisteredModel | None:
    """A registered model's versions (newest first) with aliases and run metrics; None if the
    registry has no model of that name. ``known_runs`` (run id -> metrics) saves asking again
    for runs already read (a dashboard refreshing): filled with the ones read now."""
    status, data = fetch("GET", f"/api/2.0/mlflow/registered-models/get?name={quote(name)}",
                         None)
    if status == 404 or (isinstance(data, dict) and
                         data.get("error_code") == "RESOURCE_DOES_NOT_EXIST"):
        return None
    aliases = parse_aliases(_checked((status, data), f"the model {name}"))
    query = quote(f"name='{name}'")
    listed = _checked(fetch("GET", f"/api/2.0/mlflow/model-versions/search?filter={query}"
                            f"&max_results={MAX_VERSIONS}&order_by=version_number+DESC", None),
                      f"the versions of {name}")
    runs = {str(v.get("run_id")) for v in (listed or {}).get("model_versions") or []
            if v.get("run_id")}
    cache = known_runs if known_runs is not None else {}
    for run in sorted(runs - set(cache)):
        cache[run] = parse_metrics(_checked(
            fetch("GET", f"/api/2.0/mlflow/runs/get?run_id={quote(run)}", None), f"run {run}"))
    metrics = {run: cache[run] for run in runs}
    return RegisteredModel(name, parse_versions(name, listed, aliases, metrics), aliases)


def set_alias(fetch: Fetch, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of model ``name`` at ``version``."""
    _checked(fetch("POST", "/api/2.0/mlflow/registered-models/alias",
                   {"name": name, "alias": alias, "version": version}),
             f"moving {name}@{alias} to version {version}")


def parse_served(service: str, status: int, data: Any) -> ServedModel:
    """A model service's ``GET /model`` answer (200: what it serves; else its reason)."""
    if status == 200 and isinstance(data, dict):
        raw = data.get("metrics") or {}
        metrics = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
        return ServedModel(service, str(data.get("name", "")), str(data.get("version", "")),
                           str(data.get("alias", "")), metrics)
    reason = ""
    if isinstance(data, dict):
        detail = data.get("detail")
        reason = str(detail.get("message") if isinstance(detail, dict) else detail or "")
    return ServedModel(service, problem=reason or f"HTTP {status}")


def model_names(served: Sequence[ServedModel]) -> list[str]:
    """The registered models to list: what the services serve, else their defaults."""
    names = {s.service: s.name for s in served if s.name}
    return [names.get(service, default) for service, default in MODEL_SERVICES.items()]
