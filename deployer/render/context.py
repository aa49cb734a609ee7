"""The facts of each service and job, per target, that the templates lay out: image, command,
environment, healthcheck test, ports, volumes, secrets, dependencies, resources. Computed here
in Python, where they can be typed and tested."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployer.errors import RenderError
from deployer.render.env import (
    _common_env,
    _dollar,
    _env_block,
    _env_example,
    _s3_store_command,
    _wiring_env,
)
from deployer.render.objects import (
    bucket_init_script,
    secret_name,
    swarm_configs,
    swarm_secret_bases,
)
from deployer.render.targets import _BUCKET_INIT_PATH, _VERSION_RE, NETWORK, UNSET_VERSION, Target
from deployer.values import (
    Job,
    MinioService,
    Service,
    StackValues,
    values_hash,
)


def _check_arguments(
    values: StackValues, images: Mapping[str, str], versions: Mapping[str, str]
) -> None:
    known = [*values.services.by_name(), *values.jobs.by_name()]
    for name, ref in images.items():
        if name not in known:
            raise RenderError(f"images: unknown service {name!r}; known: {', '.join(known)}")
        if not ref or any(c.isspace() for c in ref):
            raise RenderError(f"images[{name!r}]: invalid image reference {ref!r}")
    allowed = ["google_api_key", "s3_access_key", "s3_secret_key", "postgres_password"]
    for base, version in versions.items():
        if base not in allowed:
            raise RenderError(f"secret_versions: unknown secret {base!r}; known: "
                              f"{', '.join(allowed)}")
        if not _VERSION_RE.fullmatch(version):
            raise RenderError(
                f"secret_versions[{base!r}]: {version!r} is not a valid name suffix "
                "(letters, digits, '_', '.', '-'; at most 41 characters)"
            )


def _context(
    values: StackValues,
    target: Target,
    images: Mapping[str, str],
    versions: Mapping[str, str],
    build_root: str | None,
) -> dict[str, Any]:
    swarm = target == "swarm"
    root = values.build.context_root or build_root or "services"
    services = [
        _service_context(values, name, svc, target, images, root)
        for name, svc in values.active_services().items()
    ]
    jobs = [
        _job_context(values, name, job, target, images)
        for name, job in values.jobs.by_name().items()
    ]
    secrets = {
        base: secret_name(base, versions.get(base, UNSET_VERSION))
        for base in swarm_secret_bases(values)
    }
    return {
        "header": _header(values, target),
        "stack_name": values.stack.name,
        "network": NETWORK,
        # Compose only: Swarm ports have no host address (ingress and host mode bind them all).
        "bind_address": values.compose_bind_address(),
        "services": services,
        "jobs": jobs,
        "volumes": _volumes(values),
        "secrets": secrets if swarm else {},
        "configs": (
            {"bucket_init": next(iter(swarm_configs(values)))} if swarm else {}
        ),
        "swarm": values.swarm,
        "env": _env_example(values),
    }


def _header(values: StackValues, target: Target) -> str:
    return (
        f"Rendered by mlops-stack `deployer render --target {target}` from values "
        f"sha256:{values_hash(values)}. Do not edit: change the values and render again."
    )


def _healthcheck(values: StackValues, name: str, svc: Service) -> dict[str, Any]:
    hc = svc.healthcheck
    if hc.disable:
        return {"disable": True}
    test: list[str] | None = list(hc.test) if hc.test else None
    if test is None and hc.path:
        url = f"http://127.0.0.1:{svc.port}{hc.path}"
        test = {
            "python": ["CMD", "python3", "-c",
                       f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)"],
            "curl": ["CMD", "curl", "-fsS", "-o", "/dev/null", url],
            "wget": ["CMD", "wget", "-q", "-O", "/dev/null", url],
        }[hc.probe]
    if test is None and name == "minio" and svc.command is None:
        test = (
            ["CMD", "mc", "ready", "local"]
            if values.s3.backend == "minio"
            else ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{svc.port}/healthz"]
        )
    if test is None and name == "postgres":
        m = values.mlflow
        test = ["CMD", "pg_isready", "-U", m.postgres_user, "-d", m.postgres_db]
    if test is None:
        raise RenderError(
            f"services.{name}.healthcheck: no probe: set healthcheck.path or healthcheck.test "
            "(or healthcheck.disable: true)"
        )
    return {
        "test": [_dollar(part) for part in test],
        "interval": hc.interval,
        "timeout": hc.timeout,
        "retries": hc.retries,
        "start_period": hc.start_period,
    }


_VOLUMES: dict[str, list[tuple[str, str]]] = {
    "minio": [("minio-data", "/data")],
    "sklearn-model": [("sklearn-models", "/models")],
    "cnn-image": [("cnn-models", "/models")],
}


def _service_volumes(values: StackValues, name: str) -> list[tuple[str, str]]:
    if name == "mlflow-server" and values.mlflow.backend_store == "sqlite":
        return [("mlflow-data", "/mlflow")]
    if name == "postgres":
        return [("postgres-data", "/var/lib/postgresql/data")]
    return _VOLUMES.get(name, [])


def _volumes(values: StackValues) -> list[str]:
    names: list[str] = []
    for name in values.active_services():
        names.extend(vol for vol, _ in _service_volumes(values, name))
    return names


def _service_secrets(values: StackValues, name: str) -> list[str]:
    """Secret base names a service mounts in Swarm."""
    s3 = ["s3_access_key", "s3_secret_key"]
    if name == "llm-connector":
        return ["google_api_key"]
    if name in ("sklearn-model", "cnn-image"):
        return s3
    if name == "mlflow-server":
        return s3 + (["postgres_password"] if values.mlflow.backend_store == "postgres" else [])
    if name == "minio":
        return s3
    if name == "postgres":
        return ["postgres_password"]
    return []


def _depends_on(values: StackValues, name: str) -> dict[str, str]:
    """Compose start order: ``{dependency: condition}``."""
    deps: list[str] = {
        "gradio-frontend": ["llm-connector", "sklearn-model", "cnn-image"],
        "sklearn-model": ["mlflow-server"],
        "cnn-image": ["mlflow-server"],
        "mlflow-server": ["minio", "bucket-init"]
        + (["postgres"] if values.mlflow.backend_store == "postgres" else []),
        "bucket-init": ["minio"],
    }.get(name, [])
    services = values.services.by_name()
    out: dict[str, str] = {}
    for dep in deps:
        if dep == "bucket-init":
            out[dep] = "service_completed_successfully"
        elif services[dep].healthcheck.disable:
            out[dep] = "service_started"
        else:
            out[dep] = "service_healthy"
    return out


def _resources(svc: Service | Job) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for kind in ("limits", "reservations"):
        spec = getattr(svc.resources, kind)
        entry: dict[str, str] = {}
        if spec.cpus is not None:
            entry["cpus"] = f"{spec.cpus:g}"
        if spec.memory is not None:
            entry["memory"] = spec.memory
        if entry:
            out[kind] = entry
    return out


def _service_context(
    values: StackValues,
    name: str,
    svc: Service,
    target: Target,
    images: Mapping[str, str],
    build_root: str,
) -> dict[str, Any]:
    image = images.get(name) or svc.image
    if image is None and isinstance(svc, MinioService):
        image = values.s3.minio_image if values.s3.backend == "minio" else values.s3.seaweedfs_image
    if image is None:
        raise RenderError(f"services.{name}.image: no image set")
    command = svc.command
    if command is None and isinstance(svc, MinioService):
        command = _s3_store_command(values, svc)
    ports: list[tuple[int, int]] = []
    if svc.host_port is not None:
        ports.append((svc.port, svc.host_port))
    if isinstance(svc, MinioService) and svc.host_console_port is not None:
        ports.append((svc.console_port, svc.host_console_port))
    stateful = name in ("minio", "postgres") or (
        name == "mlflow-server" and values.mlflow.backend_store == "sqlite"
    )
    update = values.swarm.update_config
    # start-first (zero downtime: the new task is healthy before the old one stops) unless a
    # host-mode port would have to be bound twice on one node; a service publishing no port
    # can always start first.
    host_bound = bool(ports) and values.swarm.publish_mode == "host"
    order = update.order or ("stop-first" if host_bound else "start-first")
    if stateful:
        # Two tasks must never share a data volume (MinIO, sqlite, postgres data directories).
        order = "stop-first"
    build = None
    if svc.build and target == "compose":
        build = {
            "context": f"{build_root.rstrip('/')}/{name}",
            "base_image": values.build.base_image,
        }
    return {
        "name": name,
        "image": image,
        "build": build,
        "command": [_dollar(c) for c in command] if command else None,
        "env": _env_block(_wiring_env(values, name, target), svc.env),
        "ports": ports,
        "volumes": _service_volumes(values, name),
        "healthcheck": _healthcheck(values, name, svc),
        "replicas": svc.replicas,
        "resources": _resources(svc),
        "placement": svc.placement,
        "stop_grace_period": svc.stop_grace_period,
        "update_order": order,
        "secrets": _service_secrets(values, name),
        "depends_on": _depends_on(values, name),
    }


def _job_context(
    values: StackValues, name: str, job: Job, target: Target, images: Mapping[str, str]
) -> dict[str, Any]:
    swarm = target == "swarm"
    env = _common_env(values, target, s3_credentials=True)
    env.pop("MLFLOW_TRACKING_URI")
    env["MC_CONFIG_DIR"] = "/tmp/.mc"
    if job.command is not None:
        command: list[str] | None = list(job.command) or None
    elif swarm:
        command = ["sh", _BUCKET_INIT_PATH]
    else:
        command = ["sh", "-c", bucket_init_script(values)]
    return {
        "name": name,
        "image": images.get(name) or job.image,
        "command": [_dollar(c) for c in command] if command else None,
        "env": _env_block(env, job.env),
        "resources": _resources(job),
        "secrets": ["s3_access_key", "s3_secret_key"],
        "depends_on": _depends_on(values, name),
    }
