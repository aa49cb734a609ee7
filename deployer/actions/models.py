"""Models of a deployed stack: what each model service serves and what the registry holds, and
promoting a version to the alias the services load (``champion``).

MLflow and the model APIs are reached through the stack's connection (``connectors.http``: an
SSH channel to the manager's published port, or loopback locally), never through a port opened
for it. A promotion takes the stack's lock and writes the audit log like every change; the
services pick the new version up on their next alias poll, without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.actions.base import ActionContext, locked, record
from deployer.actions.services import snapshot
from deployer.connectors import http
from deployer.errors import ConfigError, DeployError, MlopsError
from deployer.models import (
    CHAMPION,
    MODEL_SERVICES,
    Fetch,
    RegisteredModel,
    ServedModel,
    model_names,
    parse_served,
    read_registered,
    set_alias,
)
from deployer.swarm import SwarmSnapshot

MLFLOW_SERVICE = "mlflow-server"
#: The port each service listens on in its container (the rendered stack's targets).
TARGET_PORTS: Mapping[str, int] = {MLFLOW_SERVICE: 5000, "sklearn-model": 8001,
                                   "cnn-image": 8002}


@dataclass(frozen=True)
class Endpoint:
    """Where a service answers, as seen from the connector's host."""

    address: str
    port: int


@dataclass(frozen=True)
class ModelsOverview:
    served: tuple[ServedModel, ...]
    registry: tuple[RegisteredModel, ...]
    #: Model names the registry does not know (nothing registered yet).
    missing: tuple[str, ...] = ()


#: Where a service answers when the stack does not publish it on the manager (a dnsrr service
#: on a worker, a port bound elsewhere): service name -> endpoint, as the manager reaches it.
Endpoints = Mapping[str, Endpoint]


def published(found: SwarmSnapshot, service: str, endpoints: Endpoints) -> Endpoint | None:
    """Where ``service``'s API answers: the given endpoint, else the manager's published port."""
    if service in endpoints:
        return endpoints[service]
    state = found.service(service)
    if state is None:
        return None
    target = TARGET_PORTS.get(service)
    for port in state.ports:
        if port.published is not None and (target is None or port.target == target):
            return Endpoint("127.0.0.1", port.published)
    return None


def parse_endpoints(items: Sequence[str]) -> dict[str, Endpoint]:
    """``SERVICE=HOST:PORT`` items (as the manager reaches them) -> endpoints; ``ConfigError``
    naming the item otherwise."""
    out: dict[str, Endpoint] = {}
    for item in items:
        service, _, where = item.partition("=")
        host, sep, port = where.rpartition(":")
        if service not in TARGET_PORTS or not sep or not host or not port.isdigit() \
                or not 0 < int(port) < 65536:
            raise ConfigError(
                f"--endpoint {item!r}: expected SERVICE=HOST:PORT with SERVICE one of "
                f"{', '.join(TARGET_PORTS)}",
                fix="e.g. --endpoint mlflow-server=127.0.0.1:5000 (as the manager reaches it)")
        out[service] = Endpoint(host, int(port))
    return out


def fetcher(ctx: ActionContext, where: Endpoint) -> Fetch:
    def fetch(method: str, path: str, body: Any) -> tuple[int, Any]:
        answer = http.request(ctx.conn, where.port, method, path, body=body,
                              address=where.address)
        try:
            return answer.status, answer.json()
        except ValueError:
            return answer.status, None

    return fetch


def mlflow_endpoint(ctx: ActionContext, found: SwarmSnapshot, endpoints: Endpoints) -> Endpoint:
    where = published(found, MLFLOW_SERVICE, endpoints)
    if where is None:
        raise DeployError(f"stack {ctx.stack} publishes no MLflow port on {ctx.host}",
                          fix="deploy the stack with mlflow-server published, or pass "
                          "--endpoint mlflow-server=HOST:PORT as the manager reaches it")
    return where


def served_models(ctx: ActionContext, found: SwarmSnapshot,
                  endpoints: Endpoints) -> tuple[ServedModel, ...]:
    """Each model service's ``GET /model`` through the connection (its reason if it has none)."""
    out = []
    for service in MODEL_SERVICES:
        where = published(found, service, endpoints)
        if where is None:
            problem = "not deployed" if found.service(service) is None else "no published port"
            out.append(ServedModel(service, problem=problem))
            continue
        try:
            status, data = fetcher(ctx, where)("GET", "/model", None)
        except MlopsError as exc:
            out.append(ServedModel(service, problem=exc.message))
            continue
        out.append(parse_served(service, status, data))
    return tuple(out)


def overview(ctx: ActionContext, *, endpoints: Endpoints | None = None,
             known_runs: dict[str, dict[str, float]] | None = None) -> ModelsOverview:
    """What the services serve and the registry's versions of their models (read-only;
    ``known_runs`` caches the runs' metrics between calls)."""
    found = snapshot(ctx)
    served = served_models(ctx, found, endpoints or {})
    fetch = fetcher(ctx, mlflow_endpoint(ctx, found, endpoints or {}))
    registry, missing = [], []
    for name in model_names(served):
        model = read_registered(fetch, name, known_runs)
        if model is None:
            missing.append(name)
        else:
            registry.append(model)
    return ModelsOverview(served, tuple(registry), tuple(missing))


def promote(ctx: ActionContext, name: str, version: str, *, alias: str = CHAMPION,
            endpoints: Endpoints | None = None) -> RegisteredModel:
    """Point ``name@alias`` at ``version`` (``ok`` if it already is); returns the model as it was.

    Refuses a model or version the registry does not have, before taking the lock.
    """
    fetch = fetcher(ctx, mlflow_endpoint(ctx, snapshot(ctx), endpoints or {}))
    model = read_registered(fetch, name)
    if model is None:
        raise ConfigError(f"the registry has no model {name!r}",
                          fix="list them with `deployer models`")
    if model.version(version) is None:
        listed = ", ".join(v.version for v in model.versions) or "none"
        raise ConfigError(f"{name} has no version {version!r}", fix=f"its versions: {listed}")
    previous = model.aliases.get(alias)
    if previous == version:
        ctx.events.step(ctx.host, "ok", "promote", f"{name}@{alias}", f"already version {version}")
        return model
    with locked(ctx) as state:
        set_alias(fetch, name, alias, version)
        ctx.events.step(ctx.host, "changed", "promote", f"{name}@{alias}",
                        f"{previous or 'none'} -> {version}")
        record(ctx, state, "promote-model", model=name, alias=alias, version=version,
               previous=previous)
    return model
