"""The stack-wide sections of the values (stack, build, swarm, s3, mlflow, llm, compose,
registry) and ``StackValues``, the whole model."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from deployer.values.services import Jobs, LabelKey, MinioService, NodeName, Service, Services
from deployer.values.types import (
    DEFAULT_POSTGRES_PASSWORD,
    DEFAULT_S3_CREDENTIALS,
    BucketName,
    Duration,
    ImageRef,
    IpAddress,
    NonEmpty,
    StackName,
    _Strict,
)

# ---------------------------------------------------------------------------------------------
# Stack-wide settings
# ---------------------------------------------------------------------------------------------


class Stack(_Strict):
    name: StackName = "mlops"
    environment: Literal["development", "staging", "production"] = Field(
        default="development",
        description="production refuses well-known default credentials.",
    )


class Build(_Strict):
    base_image: ImageRef = Field(
        default="python:3.11-slim", description="BASE_IMAGE build argument of every service."
    )
    context_root: str | None = Field(
        default=None,
        description="Folder holding services/<name> build contexts, relative to the rendered "
        "Compose file (or absolute). Default: computed from the output folder.",
    )


class UpdateConfig(_Strict):
    parallelism: int = Field(default=1, ge=0)
    delay: Duration = "5s"
    failure_action: Literal["rollback", "pause", "continue"] = "rollback"
    monitor: Duration = "30s"
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)
    order: Literal["start-first", "stop-first"] | None = Field(
        default=None,
        description="Default: start-first with ingress publishing, stop-first with host mode "
        "(a host port cannot be bound twice on one node). Stateful services are always "
        "stop-first.",
    )


class RollbackConfig(_Strict):
    parallelism: int = Field(default=1, ge=0)
    delay: Duration = "0s"
    failure_action: Literal["pause", "continue"] = "pause"
    monitor: Duration = "10s"
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)
    order: Literal["start-first", "stop-first"] = "stop-first"


class RestartPolicy(_Strict):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Duration = "5s"
    max_attempts: int | None = Field(default=None, ge=0)
    window: Duration = "60s"


class Swarm(_Strict):
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    publish_mode: Literal["ingress", "host"] = "ingress"
    update_config: UpdateConfig = UpdateConfig()
    rollback_config: RollbackConfig = RollbackConfig()
    restart_policy: RestartPolicy = RestartPolicy()
    node_labels: dict[NodeName, dict[LabelKey, str]] = Field(
        default={},
        description="Labels the deployer sets on the cluster's nodes (node hostname -> "
        "{key: value}), e.g. from an inventory host's values; placement constraints and "
        "spread preferences use them as node.labels.KEY. Labels not listed are left alone.",
    )


class S3(_Strict):
    backend: Literal["minio", "seaweedfs"] = "minio"
    bucket: BucketName = "mlflow"
    region: NonEmpty = "us-east-1"
    access_key: NonEmpty = DEFAULT_S3_CREDENTIALS[0]
    secret_key: NonEmpty = DEFAULT_S3_CREDENTIALS[1]
    minio_image: ImageRef = "minio/minio:latest"
    seaweedfs_image: ImageRef = "chrislusf/seaweedfs:latest"


class Mlflow(_Strict):
    backend_store: Literal["sqlite", "postgres"] = "sqlite"
    artifacts_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]*$")] = (
        "artifacts"
    )
    postgres_db: NonEmpty = "mlflow"
    postgres_user: NonEmpty = "mlflow"
    postgres_password: NonEmpty = DEFAULT_POSTGRES_PASSWORD


class Llm(_Strict):
    google_model: NonEmpty = "gemini-2.5-flash"


class ComposeSettings(_Strict):
    """The Compose target (one engine, e.g. a laptop). Swarm publishes on every node instead."""

    bind_address: IpAddress | None = Field(
        default=None,
        description="Host address the published ports bind to. Default: 127.0.0.1 (this "
        "machine only) in development, 0.0.0.0 (every interface) otherwise.",
    )
    publish_default_credentials: bool = Field(
        default=False,
        description="Allow publishing the S3 store with the well-known default credentials on "
        "a non-loopback bind_address (anyone on the network could then read and write it).",
    )


# host[:port][/path]: where registry mode pushes the images (no scheme: always HTTPS, except
# the loopback addresses the engines treat as insecure).
RegistryURL = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$"
    ),
    Field(description='A registry host[:port][/path] such as "registry.example.com:5000/team".'),
]


class Registry(_Strict):
    """Registry mode: images are pushed here (only missing layers), the stack file pins them by
    digest and every node pulls them with the deploy's registry auth. Credentials never come
    from the values: ``$MLOPS_REGISTRY_USERNAME`` / ``$MLOPS_REGISTRY_PASSWORD``, else
    ``username`` + ``password_file``."""

    url: RegistryURL
    username: NonEmpty | None = Field(
        default=None, description="Login name (not a secret; $MLOPS_REGISTRY_USERNAME wins)."
    )
    password_file: NonEmpty | None = Field(
        default=None,
        description="A file holding the password, e.g. a mounted secret (used when "
        "$MLOPS_REGISTRY_PASSWORD is unset). Never put the password itself in the values.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("password", "token", "auth"):
                if key in data:
                    raise ValueError(
                        f"registry.{key}|credentials never go in the values file: export "
                        "MLOPS_REGISTRY_PASSWORD, or set registry.password_file to a file "
                        "holding it"
                    )
        return data


class StackValues(_Strict):
    """The whole declared stack. Every renderer and tool reads this, never raw YAML."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, title="mlops-stack values",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    stack: Stack = Stack()
    build: Build = Build()
    services: Services
    jobs: Jobs
    swarm: Swarm = Swarm()
    s3: S3 = S3()
    mlflow: Mlflow = Mlflow()
    llm: Llm = Llm()
    compose: ComposeSettings = ComposeSettings()
    registry: Registry | None = Field(
        default=None, description="Registry mode (default: images are shipped over SSH)."
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> StackValues:
        # Errors raised here carry their key path in the message prefix "<path>|" so that
        # load_values() can point at the line that set it (see _split_custom).
        if (
            self.swarm.endpoint_mode == "dnsrr"
            and self.swarm.publish_mode == "ingress"
            and any(s.host_port for s in self.active_services().values())
        ):
            raise ValueError(
                "swarm.endpoint_mode|endpoint_mode dnsrr cannot publish ports through the "
                "ingress routing mesh (Docker rejects it); set swarm.publish_mode=host or "
                "swarm.endpoint_mode=vip"
            )
        if self.swarm.publish_mode == "host" and self.swarm.update_config.order == "start-first":
            raise ValueError(
                "swarm.update_config.order|start-first cannot update a service that publishes "
                "a host-mode port (the new task cannot bind the port the old one holds); use "
                "stop-first or leave order unset"
            )
        seen: dict[int, str] = {}
        for name, svc in self.active_services().items():
            # Name the key that really set the host port (published_* or, implicitly, the port).
            ports = [("published_port" if svc.published_port else "port", svc.host_port)]
            if isinstance(svc, MinioService):
                ports.append((
                    "published_console_port" if svc.published_console_port else "console_port",
                    svc.host_console_port,
                ))
            for key, port in ports:
                if port is None:
                    continue
                where = f"services.{name}.{key}"
                if port in seen:
                    raise ValueError(
                        f"{seen[port]},{where}|host port {port} is published twice: by "
                        f"{seen[port]} and by {where}; give one of them another published port"
                    )
                seen[port] = where
        return self

    def compose_exposes_default_credentials(self) -> bool:
        """Whether Compose would publish the S3 store, holding the well-known default
        credentials, on a non-loopback address without ``compose.publish_default_credentials``."""
        minio = self.services.minio
        return (
            not ipaddress.ip_address(self.compose_bind_address()).is_loopback
            and (minio.host_port is not None or minio.host_console_port is not None)
            and (self.s3.access_key, self.s3.secret_key) == DEFAULT_S3_CREDENTIALS
            and not self.compose.publish_default_credentials
        )

    def compose_bind_address(self) -> str:
        """The host address Compose publishes ports on (see ``compose.bind_address``)."""
        if self.compose.bind_address is not None:
            return self.compose.bind_address
        return "127.0.0.1" if self.stack.environment == "development" else "0.0.0.0"

    def active_services(self) -> dict[str, Service]:
        """The long-running services the current values render, in stack order."""
        out = self.services.by_name()
        if self.mlflow.backend_store != "postgres":
            del out["postgres"]
        return out

    def service_names(self) -> list[str]:
        """Names of the rendered long-running services (Swarm services minus the stack prefix)."""
        return list(self.active_services())

    def job_names(self) -> list[str]:
        """Names of the rendered one-shot jobs."""
        return list(self.jobs.by_name())

    def uses_default_credentials(self) -> list[str]:
        """Key paths holding well-known default credentials (empty when none)."""
        found = []
        if (self.s3.access_key, self.s3.secret_key) == DEFAULT_S3_CREDENTIALS:
            found.append("s3.secret_key")
        if (
            self.mlflow.backend_store == "postgres"
            and self.mlflow.postgres_password == DEFAULT_POSTGRES_PASSWORD
        ):
            found.append("mlflow.postgres_password")
        return found
