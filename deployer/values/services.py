"""The per-service sections of the values: images, replicas, ports, health, resources,
placement, and the one-shot jobs."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
)

from deployer.values.types import (
    Duration,
    EnvName,
    EnvValue,
    ImageRef,
    Memory,
    NonEmpty,
    Port,
    Replicas,
    _Strict,
)

# ---------------------------------------------------------------------------------------------
# Per-service settings
# ---------------------------------------------------------------------------------------------


class ResourceSpec(_Strict):
    cpus: float | None = Field(default=None, gt=0, le=64, description="CPU cores, e.g. 0.5.")
    memory: Memory | None = None


class Resources(_Strict):
    limits: ResourceSpec = ResourceSpec()
    reservations: ResourceSpec = ResourceSpec()


class Healthcheck(_Strict):
    """How Docker probes a service. ``test`` wins; else ``path`` is probed on the service port."""

    test: list[NonEmpty] | None = Field(
        default=None, description='Explicit probe, e.g. ["CMD", "mc", "ready", "local"].'
    )
    path: str | None = Field(
        default=None, pattern=r"^/", description="HTTP path probed on the service's own port."
    )
    probe: Literal["python", "curl", "wget"] = Field(
        default="python", description="Program inside the image that fetches `path`."
    )
    interval: Duration = "10s"
    timeout: Duration = "5s"
    retries: int = Field(default=3, ge=1, le=100)
    start_period: Duration = "30s"
    disable: bool = False


#: What a Swarm placement constraint may test (docker service create --constraint).
_CONSTRAINT = re.compile(
    r"^\s*(node\.(id|hostname|role|platform\.os|platform\.arch)|"
    r"(node|engine)\.labels\.[A-Za-z0-9][A-Za-z0-9._-]*)\s*(==|!=)\s*\S.*$"
)
_SPREAD = re.compile(r"^(node|engine)\.labels\.[A-Za-z0-9][A-Za-z0-9._-]*$")


def _constraint(text: str) -> str:
    if not _CONSTRAINT.match(text):
        raise ValueError(
            f"{text!r} is not a placement constraint: expected ATTRIBUTE == VALUE or "
            "ATTRIBUTE != VALUE, ATTRIBUTE one of node.id, node.hostname, node.role, "
            "node.platform.os, node.platform.arch, node.labels.KEY, engine.labels.KEY "
            "(e.g. \"node.role == worker\", \"node.labels.zone == a\")"
        )
    return text.strip()


def _spread(text: str) -> str:
    if not _SPREAD.match(text):
        raise ValueError(
            f"{text!r} cannot be spread over: expected node.labels.KEY or engine.labels.KEY "
            "(e.g. node.labels.zone)"
        )
    return text


Constraint = Annotated[str, AfterValidator(_constraint)]
LabelKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    Field(description="A node label key: letters, digits, '.', '-', '_'."),
]
NodeName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"),
    Field(description="A Swarm node's hostname (as `docker node ls` shows it)."),
]


class SpreadPreference(_Strict):
    """Spread a service's tasks evenly over the values of a node label."""

    spread: Annotated[str, AfterValidator(_spread)] = Field(
        description="node.labels.KEY (or engine.labels.KEY), e.g. node.labels.zone."
    )


class Placement(_Strict):
    """Where Swarm may run a service's tasks."""

    constraints: list[Constraint] = Field(
        default=[], description='Every one must hold, e.g. ["node.role == worker"].'
    )
    preferences: list[SpreadPreference] = Field(
        default=[], description="Spread tasks over node label values, in order of priority."
    )
    max_replicas_per_node: int | None = Field(
        default=None, ge=1, description="At most this many tasks of the service on one node."
    )


class Service(_Strict):
    """One long-running service of the stack."""

    image: ImageRef | None = Field(
        default=None, description="Image reference (the S3 store defaults to its backend's)."
    )
    build: bool = Field(
        default=True, description="Compose builds the image from services/<name> when true."
    )
    replicas: Replicas = 1
    port: Port
    published_port: Port | None = Field(
        default=None, description="Host port; defaults to `port`."
    )
    publish: bool = Field(default=True, description="Publish the port on the host at all.")
    command: list[str] | None = Field(
        default=None, description="Overrides the image's command; [] means the image default."
    )
    env: dict[EnvName, EnvValue] = {}
    resources: Resources = Resources()
    healthcheck: Healthcheck = Healthcheck(path="/health")
    placement: Placement = Placement()
    stop_grace_period: Duration = "10s"

    @property
    def host_port(self) -> int | None:
        """The host port this service publishes, or None when it publishes nothing."""
        if not self.publish:
            return None
        return self.published_port if self.published_port is not None else self.port


class MinioService(Service):
    """The S3 store (named `minio` whatever the backend, so clients always use minio:9000)."""

    build: bool = False
    console_port: Port = 9001
    published_console_port: Port | None = None
    healthcheck: Healthcheck = Healthcheck()

    @property
    def host_console_port(self) -> int | None:
        """The host port of the console, or None when not published."""
        if not self.publish:
            return None
        if self.published_console_port is not None:
            return self.published_console_port
        return self.console_port


class PostgresService(Service):
    """MLflow's backend database; rendered only when ``mlflow.backend_store`` is postgres."""

    build: bool = False
    port: Port = 5432
    publish: bool = False
    healthcheck: Healthcheck = Healthcheck()


class Services(_Strict):
    """The stack's long-running services, by their Compose/Swarm names."""

    gradio_frontend: Service = Field(alias="gradio-frontend")
    llm_connector: Service = Field(alias="llm-connector")
    sklearn_model: Service = Field(alias="sklearn-model")
    cnn_image: Service = Field(alias="cnn-image")
    mlflow_server: Service = Field(alias="mlflow-server")
    minio: MinioService
    postgres: PostgresService = PostgresService(image="postgres:16-alpine")

    def by_name(self) -> dict[str, Service]:
        """Every configured service keyed by its stack name (postgres included)."""
        out: dict[str, Service] = {}
        for field_name, info in type(self).model_fields.items():
            out[info.alias or field_name] = getattr(self, field_name)
        return out


class Job(_Strict):
    """A one-shot task (Compose: runs once; Swarm: a replicated-job)."""

    image: ImageRef
    command: list[str] | None = Field(
        default=None, description="Overrides the shipped script; [] means the image default."
    )
    env: dict[EnvName, EnvValue] = {}
    resources: Resources = Resources()


class Jobs(_Strict):
    bucket_init: Job = Field(alias="bucket-init")

    def by_name(self) -> dict[str, Job]:
        """Every job keyed by its stack name."""
        return {"bucket-init": self.bucket_init}
