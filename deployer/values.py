"""The stack's values: one typed model, loaded from layered YAML files and ``--set`` overrides.

Layering, lowest first: the shipped ``templates/values.yaml`` < each ``-f FILE`` in order <
each ``--set dotted.key=value`` in order. Mappings merge key by key; lists and scalars replace.
Every key path remembers which file (and line) set it last, so a validation error names the file,
the key path and the line a user has to fix.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from deployer.errors import ValuesError
from deployer.resources import templates_dir

# ---------------------------------------------------------------------------------------------
# Scalar types
# ---------------------------------------------------------------------------------------------

Port = Annotated[int, Field(ge=1, le=65535, description="A TCP port number (1-65535).")]
Replicas = Annotated[int, Field(ge=0, le=100, description="Number of tasks (0-100).")]
# Go duration strings as Docker accepts them: "500ms", "10s", "1m30s".
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(ns|us|ms|s|m|h))+$"),
    Field(description='A duration such as "10s", "500ms" or "1m30s".'),
]
Memory = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]+([bkmgBKMG])?$"),
    Field(description='A memory size such as "512M" or "2G".'),
]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = str | int | float | bool
# A Docker image reference: [registry[:port]/]path[:tag][@digest], lower-case repository.
ImageRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
    ),
    Field(description='An image reference such as "mlops/llm-connector:latest".'),
]
StackName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$"),
    Field(description="Lower-case letters, digits, '-' and '_' (Compose project / Swarm stack)."),
]


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (e.g. 127.0.0.1 for this machine only, 0.0.0.0 for "
            "every interface)"
        ) from None


IpAddress = Annotated[str, AfterValidator(_ip_address)]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]

#: The well-known development credentials of MinIO; refused for production unless allowed.
DEFAULT_S3_CREDENTIALS = ("minioadmin", "minioadmin")
DEFAULT_POSTGRES_PASSWORD = "mlflow"


class _Strict(BaseModel):
    """Base of every values model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Where a key's value came from: a file (with line) or a ``--set`` argument."""

    source: str
    line: int | None = None
    #: 0 for the shipped defaults, then one more per -f file and per --set.
    layer: int = 0


def default_values_file() -> Path:
    """The shipped defaults (lowest layer)."""
    return templates_dir() / "values.yaml"


def known_service_names() -> list[str]:
    """Every name accepted under ``services.``."""
    return [info.alias or name for name, info in Services.model_fields.items()]


def known_job_names() -> list[str]:
    """Every name accepted under ``jobs.``."""
    return [info.alias or name for name, info in Jobs.model_fields.items()]


def load_values(
    files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    *,
    allow_default_credentials: bool = False,
) -> StackValues:
    """Load the defaults, overlay ``files`` in order, then ``sets``; validate.

    Raises ValuesError naming the file, key path and line of the first problem.
    Default credentials are refused when ``stack.environment`` is production unless
    ``allow_default_credentials``.
    """
    merged: dict[str, Any] = {}
    origins: dict[KeyPath, Origin] = {}
    layer = 0
    for path in (default_values_file(), *files):
        data, lines = _read_yaml_file(Path(path))
        _merge(merged, data, (), origins, Source(str(path), layer), lines)
        layer += 1
    for raw in sets:
        keypath, value = parse_set(raw)
        _merge(merged, _nest(keypath, value), (), origins, Source(f"--set {raw}", layer), {})
        layer += 1
    values = _validate(merged, origins)
    if values.stack.environment == "production" and not allow_default_credentials:
        bad = values.uses_default_credentials()
        if bad:
            key = bad[0]
            origin = _origin_for(tuple(key.split(".")), origins)
            env_origin = _origin_for(("stack", "environment"), origins)
            env_where = env_origin.source + (
                f":{env_origin.line}" if env_origin.line is not None else ""
            )
            raise ValuesError(
                "well-known default credentials are refused because stack.environment is "
                f"production (set by {env_where})",
                source=origin.source,
                key=key,
                line=origin.line,
                fix=f"set real credentials in {key} (and its pair) or pass "
                "--allow-default-credentials",
            )
    if not allow_default_credentials and values.compose_exposes_default_credentials():
        # Name what made the address non-loopback: the address itself, or the environment.
        key = "compose.bind_address"
        if values.compose.bind_address is None:
            key = "stack.environment"
        origin = _origin_for(tuple(key.split(".")), origins)
        raise ValuesError(
            f"Compose would publish the S3 store (services.minio) on "
            f"{values.compose_bind_address()}, not a loopback address, with the well-known "
            f"default credentials {'/'.join(DEFAULT_S3_CREDENTIALS)}: anyone on the network "
            "could read and write it",
            source=origin.source,
            key=key,
            line=origin.line,
            fix="set real s3.access_key and s3.secret_key, or bind to this machine only "
            "(compose.bind_address=127.0.0.1), or services.minio.publish=false; to accept it, "
            "set compose.publish_default_credentials=true",
        )
    return values


def parse_set(raw: str) -> tuple[KeyPath, Any]:
    """Parse one ``--set dotted.key=value``; the value is typed as a YAML scalar/flow node."""
    source = f"--set {raw}"
    key, sep, text = raw.partition("=")
    key = key.strip()
    if not sep:
        raise ValuesError(
            "expected KEY=VALUE", source=source, fix="e.g. --set services.minio.replicas=2"
        )
    if not key:
        raise ValuesError("the key before '=' is empty", source=source)
    parts = tuple(key.split("."))
    for part in parts:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", part):
            raise ValuesError(
                f"malformed key segment {part!r} (letters, digits, '-', '_' between dots)",
                source=source,
                key=key,
            )
    if parts[0] in ("services", "jobs") and len(parts) >= 2:
        known = known_service_names() if parts[0] == "services" else known_job_names()
        if parts[1] not in known:
            raise ValuesError(
                f"unknown {parts[0][:-1]} {parts[1]!r}; known: {', '.join(known)}",
                source=source,
                key=key,
                fix=_did_you_mean(parts[1], known),
            )
    try:
        value = yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ValuesError(
            f"value is not valid YAML: {_yaml_problem(exc)}", source=source, key=key
        ) from None
    return parts, value


def values_hash(values: StackValues) -> str:
    """A stable sha256 hex digest of the values' canonical JSON (key order independent)."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()


def canonical_json(values: StackValues) -> str:
    """The values as compact JSON with sorted keys (the input of values_hash)."""
    data = values.model_dump(mode="json", by_alias=True)
    _omit_new_defaults(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: Keys added after stacks were deployed, as (path, default); "*" matches every key. Left out
#: of the hash while at their default, so adding them changes no deployed revision's hash (a
#: changed hash would make the next push redeploy an unchanged stack).
_NEW_DEFAULTS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("swarm", "node_labels"), {}),
    (("services", "*", "placement", "preferences"), []),
    (("compose", "bind_address"), None),
    (("compose", "publish_default_credentials"), False),
    (("compose",), {}),
    (("registry",), None),
)


def _omit_new_defaults(data: dict[str, Any]) -> None:
    def prune(node: Any, path: tuple[str, ...], default: Any) -> None:
        if not isinstance(node, dict):
            return
        head, rest = path[0], path[1:]
        keys = list(node) if head == "*" else [head]
        for key in keys:
            if key not in node:
                continue
            if rest:
                prune(node[key], rest, default)
            elif node[key] == default:
                del node[key]

    for path, default in _NEW_DEFAULTS:
        prune(data, path, default)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the values file (for editors and `deployer schema`)."""
    return StackValues.model_json_schema(by_alias=True)


# --- YAML reading with line numbers ---------------------------------------------------------


# libyaml's parser when PyYAML was built with it (several times faster), else pure Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml_file(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse one values file; return the data and the line (1-based) of every key path."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValuesError("file not found", source=source, fix="check the -f path") from None
    except IsADirectoryError:
        raise ValuesError("is a directory, expected a YAML file", source=source) from None
    except UnicodeDecodeError as exc:
        raise ValuesError(f"not UTF-8 text ({exc.reason})", source=source) from None
    except OSError as exc:
        raise ValuesError(f"cannot read: {exc.strerror}", source=source) from None
    loader = _Loader(text)
    try:
        docs: list[yaml.Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(node)
    except yaml.YAMLError as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        raise ValuesError(f"YAML syntax error: {_yaml_problem(exc)}", source=source,
                          line=line) from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise ValuesError(
            "file is empty; a values file is a YAML mapping such as `stack: {name: mlops}`",
            source=source,
        )
    if len(docs) > 1:
        raise ValuesError(
            "holds several YAML documents (---); put one mapping per file",
            source=source,
            line=docs[1].start_mark.line + 1,
        )
    root = docs[0]
    if not isinstance(root, yaml.MappingNode):
        raise ValuesError(
            f"top level must be a mapping of keys, got {_node_kind(root)}",
            source=source,
            line=root.start_mark.line + 1,
        )
    lines: dict[KeyPath, int] = {}
    _index_lines(root, (), lines, source)
    try:
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:  # e.g. a bad tag value found only while constructing
        raise ValuesError(f"YAML error: {_yaml_problem(exc)}", source=source) from None
    finally:
        loader.dispose()
    return data, lines


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ValuesError("YAML merge keys (<<) are not supported in values files",
                                  source=source, line=line)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ValuesError("keys must be plain strings", source=source,
                                  key=_dotted(path) or None, line=line)
            if key in seen:
                raise ValuesError(
                    f"duplicate key {key!r} (first set on line {seen[key]})",
                    source=source, key=_dotted((*path, key)), line=line,
                )
            seen[key] = line
            lines[(*path, key)] = line
            _index_lines(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, str(i)), lines, source)


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the scalar {node.value!r}"
    return "something else"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    text = problem or str(exc).splitlines()[0]
    if context:
        text = f"{text} ({context})"
    return str(text)


# --- Merging with origins -------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One layer being merged: its display name and position."""

    name: str
    layer: int


def _merge(
    into: dict[str, Any],
    new: Mapping[str, Any],
    path: KeyPath,
    origins: dict[KeyPath, Origin],
    source: Source,
    lines: Mapping[KeyPath, int],
) -> None:
    for key, value in new.items():
        key = str(key)
        here = (*path, key)
        current = into.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            origins.setdefault(here, Origin(source.name, lines.get(here), source.layer))
            _merge(current, value, here, origins, source, lines)
            continue
        into[key] = value
        # Drop stale origins below a replaced subtree, then record the new ones.
        for old in [k for k in origins if k[: len(here)] == here]:
            del origins[old]
        for sub in _walk(value, here):
            origins[sub] = Origin(source.name, lines.get(sub, lines.get(here)), source.layer)


def _walk(value: Any, path: KeyPath) -> Iterator[KeyPath]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))


def _nest(path: KeyPath, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    assert isinstance(out, dict)
    return out


# --- Validation and error mapping -----------------------------------------------------------


def _validate(data: dict[str, Any], origins: dict[KeyPath, Origin]) -> StackValues:
    try:
        return StackValues.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_describe(err, origins) for err in exc.errors()]
    first = problems[0]
    message = first[3]
    if len(problems) > 1:
        others = "\n".join(
            f"    {_where(src, line, key)}: {msg}" for src, line, key, msg, _ in problems[1:]
        )
        message += f"\n  and {len(problems) - 1} more:\n{others}"
    raise ValuesError(message, source=first[0], key=first[2] or None, line=first[1],
                      fix=first[4])


def _where(source: str, line: int | None, key: str) -> str:
    text = source + (f":{line}" if line is not None else "")
    return f"{text}: {key}" if key else text


def _describe(err: Any, origins: dict[KeyPath, Origin]) -> tuple[Any, ...]:
    loc: KeyPath = tuple(str(p) for p in err["loc"])
    msg: str = err["msg"]
    fix: str | None = None
    kind = err["type"]
    if kind == "value_error" and "|" in msg:
        # Cross-field errors from StackValues._check_combinations: "key.path|message".
        text = msg.removeprefix("Value error, ")
        paths_text, _, msg = text.partition("|")
        # Several keys may be involved: point at the one the user set last (highest layer).
        candidates = [tuple(p.split(".")) for p in paths_text.split(",")]
        loc = max(candidates, key=lambda c: _origin_for(c, origins).layer)
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        msg = f"unknown key {loc[-1]!r}"
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
            fix = _did_you_mean(loc[-1], allowed)
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "literal_error":
        msg = f"{msg}, got {err.get('input')!r}"
    elif "input" in err and not isinstance(err["input"], dict | list):
        msg = f"{msg} (got {err['input']!r})"
    # Pydantic appends the union member or function name to loc for some errors: trim them.
    loc = tuple(p for p in loc if not p.startswith(("function-", "literal[", "list[", "dict[")))
    loc = _trim_loc(loc)
    origin = _origin_for(loc, origins)
    return origin.source, origin.line, _dotted(loc), msg, fix


_TYPE_LOC_PARTS = {"str", "int", "float", "bool", "constrained-str", "none", "is-instance"}


def _trim_loc(loc: KeyPath) -> KeyPath:
    return tuple(p for p in loc if p not in _TYPE_LOC_PARTS)


def _origin_for(loc: KeyPath, origins: Mapping[KeyPath, Origin]) -> Origin:
    for n in range(len(loc), -1, -1):
        if loc[:n] in origins:
            found = origins[loc[:n]]
            return found
    return Origin("<values>")


def _dotted(loc: KeyPath) -> str:
    return ".".join(loc)


def _allowed_keys(loc: KeyPath) -> list[str]:
    """The keys a model accepts at ``loc`` (walking the model classes by field name/alias)."""
    model: Any = StackValues
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = _field_by_key(model, part)
        if field is None:
            return []
        model = field.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
