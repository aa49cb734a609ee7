"""Values -> the text of docker-compose.yml, swarm-stack.yml and .env.example, validated.

Pure: nothing here writes anything except :func:`write_files`, and rendering reads only the
templates. Same values (and the same ``images`` / ``secret_versions``) give the same bytes: no
timestamps, sorted environment maps, fixed service order.

Division of labour: this module computes each service's *facts* (image, command, environment,
healthcheck test, ports, volumes, secrets) in Python, where they can be typed and tested; the
Jinja2 templates in ``templates/`` only lay them out as YAML for one target.

Secrets in Swarm (the value never appears in a rendered file): every secret is an *external*
Swarm secret named ``<base>_<version>`` (see :func:`secret_name`), created by the deployer over
stdin before ``docker stack deploy``. Services mount it at ``/run/secrets/<base>`` so the path is
stable across rotations, and get ``<VAR>_FILE=/run/secrets/<base>`` in their environment (the
``_FILE`` convention of the official postgres and MinIO images; our service images read it too).
Without ``secret_versions`` the version is :data:`UNSET_VERSION` ("unset"): such a file only
deploys if secrets of exactly those names exist, so the deployer always passes real versions.
Configs (the bucket-init script) are external too, named ``<base>_<sha256(content)[:12]>``; the
deployer creates them from :func:`swarm_configs`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Literal, get_args

import jinja2
import jsonschema
import yaml

from deployer.errors import RenderError
from deployer.resources import templates_dir
from deployer.values import (
    DEFAULT_S3_CREDENTIALS,
    Job,
    MinioService,
    Service,
    StackValues,
    values_hash,
)

Target = Literal["compose", "swarm", "env"]
TARGETS: tuple[Target, ...] = get_args(Target)

#: Output file name of each target.
FILENAMES: dict[Target, str] = {
    "compose": "docker-compose.yml",
    "swarm": "swarm-stack.yml",
    "env": ".env.example",
}
_TEMPLATES: dict[Target, str] = {
    "compose": "docker-compose.yml.j2",
    "swarm": "swarm-stack.yml.j2",
    "env": "env.example.j2",
}

#: Version used in secret names when the caller passes none (see the module docstring).
UNSET_VERSION = "unset"
NETWORK = "mlops-network"
#: Mount point of a Swarm secret named ``<base>_<version>``: stable across rotations.
SECRETS_DIR = "/run/secrets"
_BUCKET_INIT_PATH = "/bucket-init.sh"
# libyaml's parser when PyYAML was built with it (several times faster), else pure Python.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")


@dataclass(frozen=True)
class RenderedFile:
    """One rendered, validated output file."""

    target: Target
    filename: str
    text: str


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def render(
    values: StackValues,
    target: Target,
    *,
    secret_versions: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    build_root: str | None = None,
    docker_check: bool = True,
) -> RenderedFile:
    """Render and validate one target.

    ``images`` maps a service/job name to the image reference to use instead of the values'
    (the deployer pins content-hash tags). ``secret_versions`` maps a secret base name (see
    :func:`swarm_secret_bases`) to its content version. ``build_root`` is where the Compose
    build contexts ``<root>/<service>`` are, relative to the written Compose file
    (``build.context_root`` in the values wins; default ``services``). ``docker_check`` runs
    ``docker stack config`` on Swarm output when a docker CLI is on PATH.

    Raises RenderError when an argument is invalid or the output fails validation.
    """
    if target not in TARGETS:
        raise RenderError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    images = dict(images or {})
    versions = dict(secret_versions or {})
    _check_arguments(values, images, versions)
    context = _context(values, target, images, versions, build_root)
    try:
        text = _environment().get_template(_TEMPLATES[target]).render(context)
    except jinja2.UndefinedError as exc:
        raise RenderError(
            f"{_TEMPLATES[target]}: {exc.message}", fix="a template refers to a missing value"
        ) from None
    filename = FILENAMES[target]
    if target == "env":
        _check_env_file(filename, text)
    else:
        _check_stack_file(values, target, filename, text, docker_check=docker_check)
    return RenderedFile(target=target, filename=filename, text=text)


def render_all(
    values: StackValues,
    *,
    secret_versions: Mapping[str, str] | None = None,
    images: Mapping[str, str] | None = None,
    build_root: str | None = None,
    docker_check: bool = True,
) -> dict[Target, RenderedFile]:
    """Render and validate every target (nothing is returned unless all pass)."""
    return {
        target: render(
            values, target, secret_versions=secret_versions, images=images,
            build_root=build_root, docker_check=docker_check,
        )
        for target in TARGETS
    }


def write_files(files: Iterable[RenderedFile], out_dir: Path) -> list[Path]:
    """Write already-validated files into ``out_dir`` atomically (temp file + rename).

    Each file is complete or absent, never partial; existing files are replaced only if all
    temp files could be written. Returns the written paths.
    """
    files = list(files)
    staged: list[tuple[Path, Path]] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{f.filename}.", suffix=".tmp", dir=out_dir)
            staged.append((Path(tmp_name), out_dir / f.filename))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(f.text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise RenderError(f"cannot write into {out_dir}: {exc.strerror}") from None
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]


def secret_name(base: str, version: str) -> str:
    """Swarm name of a secret: ``<base>_<version>`` (a new version means a new secret)."""
    return f"{base}_{version}"


def swarm_secret_bases(values: StackValues) -> list[str]:
    """Base names of the external secrets the Swarm file needs, in a stable order.

    ``google_api_key`` (from the environment / .env), ``s3_access_key`` and ``s3_secret_key``
    (``s3.*`` values), and ``postgres_password`` with the postgres backend store.
    """
    bases = ["google_api_key", "s3_access_key", "s3_secret_key"]
    if values.mlflow.backend_store == "postgres":
        bases.append("postgres_password")
    return bases


def swarm_secret_values(values: StackValues) -> dict[str, str]:
    """Secret contents that come from the values (all but google_api_key, which never does)."""
    out = {"s3_access_key": values.s3.access_key, "s3_secret_key": values.s3.secret_key}
    if values.mlflow.backend_store == "postgres":
        out["postgres_password"] = values.mlflow.postgres_password
    return out


def swarm_configs(values: StackValues) -> dict[str, str]:
    """Swarm configs the stack file references: content-hashed name -> content."""
    script = bucket_init_script(values)
    return {_config_name("bucket_init", script): script}


def bucket_init_script(values: StackValues) -> str:
    """The shell script the bucket-init job runs (with the ``mc`` client) to create the bucket.

    Credentials come from ``AWS_*`` or, in Swarm, from the ``AWS_*_FILE`` secret files.
    """
    return _environment().get_template("bucket-init.sh.j2").render(
        bucket=values.s3.bucket, endpoint=_s3_endpoint(values)
    )


# ---------------------------------------------------------------------------------------------
# Context: what each service looks like, per target
# ---------------------------------------------------------------------------------------------


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


def _s3_endpoint(values: StackValues) -> str:
    return f"http://minio:{values.services.minio.port}"


def _common_env(values: StackValues, target: Target, *, s3_credentials: bool) -> dict[str, str]:
    env = {
        "MLFLOW_TRACKING_URI": f"http://mlflow-server:{values.services.mlflow_server.port}",
        "MLFLOW_S3_ENDPOINT_URL": _s3_endpoint(values),
        "AWS_DEFAULT_REGION": values.s3.region,
    }
    if s3_credentials:
        env.update(_s3_credential_env(values, target))
    return env


def _s3_credential_env(values: StackValues, target: Target) -> dict[str, str]:
    if target == "swarm":
        return {
            "AWS_ACCESS_KEY_ID_FILE": f"{SECRETS_DIR}/s3_access_key",
            "AWS_SECRET_ACCESS_KEY_FILE": f"{SECRETS_DIR}/s3_secret_key",
        }
    # Compose (development): taken from .env / the shell, defaulting to the values. A secret
    # that is not the public development default is never written into the file.
    secret = values.s3.secret_key
    secret_default = (
        f"${{AWS_SECRET_ACCESS_KEY:-{secret}}}"
        if secret == DEFAULT_S3_CREDENTIALS[1]
        else "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY in .env}"
    )
    return {
        "AWS_ACCESS_KEY_ID": f"${{AWS_ACCESS_KEY_ID:-{_dollar(values.s3.access_key)}}}",
        "AWS_SECRET_ACCESS_KEY": secret_default,
    }


def _wiring_env(values: StackValues, name: str, target: Target) -> dict[str, str]:
    """Environment the stack itself provides a service (user ``env`` is applied on top)."""
    swarm = target == "swarm"
    s = values.services
    if name == "gradio-frontend":
        return {
            "LLM_CONNECTOR_URL": f"http://llm-connector:{s.llm_connector.port}",
            "SKLEARN_MODEL_URL": f"http://sklearn-model:{s.sklearn_model.port}",
            "CNN_IMAGE_URL": f"http://cnn-image:{s.cnn_image.port}",
        }
    if name == "llm-connector":
        env = {"GOOGLE_MODEL": values.llm.google_model}
        if swarm:
            env["GOOGLE_API_KEY_FILE"] = f"{SECRETS_DIR}/google_api_key"
        else:
            env["GOOGLE_API_KEY"] = "${GOOGLE_API_KEY:-}"
        return env
    if name in ("sklearn-model", "cnn-image"):
        return {**_common_env(values, target, s3_credentials=True), "MODEL_DIR": "/models"}
    if name == "mlflow-server":
        env = _common_env(values, target, s3_credentials=True)
        env.pop("MLFLOW_TRACKING_URI")
        m = values.mlflow
        if m.backend_store == "postgres":
            base = f"postgresql://{m.postgres_user}"
            where = f"@postgres:{s.postgres.port}/{m.postgres_db}"
            if swarm:
                env["MLFLOW_BACKEND_STORE_URI"] = base + where
                env["MLFLOW_BACKEND_STORE_PASSWORD_FILE"] = f"{SECRETS_DIR}/postgres_password"
            else:
                env["MLFLOW_BACKEND_STORE_URI"] = f"{base}:{_dollar(m.postgres_password)}{where}"
        else:
            env["MLFLOW_BACKEND_STORE_URI"] = "sqlite:////mlflow/mlflow.db"
        prefix = m.artifacts_prefix.strip("/")
        dest = f"s3://{values.s3.bucket}" + (f"/{prefix}" if prefix else "")
        env["MLFLOW_ARTIFACTS_DESTINATION"] = dest
        env["MLFLOW_HOST"] = "0.0.0.0"
        env["MLFLOW_PORT"] = str(s.mlflow_server.port)
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env
    if name == "minio":
        return _s3_store_env(values, target)
    if name == "postgres":
        m = values.mlflow
        env = {"POSTGRES_DB": m.postgres_db, "POSTGRES_USER": m.postgres_user}
        if swarm:
            env["POSTGRES_PASSWORD_FILE"] = f"{SECRETS_DIR}/postgres_password"
        else:
            env["POSTGRES_PASSWORD"] = _dollar(m.postgres_password)
        return env
    return {}


def _s3_store_env(values: StackValues, target: Target) -> dict[str, str]:
    swarm = target == "swarm"
    if values.s3.backend == "minio":
        env = {"MINIO_SITE_REGION": values.s3.region}
        if swarm:
            # MinIO resolves *_FILE names under /run/secrets.
            env["MINIO_ROOT_USER_FILE"] = "s3_access_key"
            env["MINIO_ROOT_PASSWORD_FILE"] = "s3_secret_key"
        else:
            creds = _s3_credential_env(values, target)
            env["MINIO_ROOT_USER"] = creds["AWS_ACCESS_KEY_ID"]
            env["MINIO_ROOT_PASSWORD"] = creds["AWS_SECRET_ACCESS_KEY"]
        return env
    # SeaweedFS: its start script (see _s3_store_command) builds the S3 identity from these.
    if swarm:
        return {
            "AWS_ACCESS_KEY_ID_FILE": f"{SECRETS_DIR}/s3_access_key",
            "AWS_SECRET_ACCESS_KEY_FILE": f"{SECRETS_DIR}/s3_secret_key",
        }
    return _s3_credential_env(values, target)


def _s3_store_command(values: StackValues, svc: MinioService) -> list[str]:
    if values.s3.backend == "minio":
        return ["server", "/data", "--address", f":{svc.port}",
                "--console-address", f":{svc.console_port}"]
    # SeaweedFS takes S3 identities from a JSON file: write it from the credentials at start.
    script = (
        'ak="${AWS_ACCESS_KEY_ID:-$(cat "$AWS_ACCESS_KEY_ID_FILE")}"; '
        'sk="${AWS_SECRET_ACCESS_KEY:-$(cat "$AWS_SECRET_ACCESS_KEY_FILE")}"; '
        "printf '{\"identities\":[{\"name\":\"admin\",\"credentials\":[{\"accessKey\":\"%s\","
        "\"secretKey\":\"%s\"}],\"actions\":[\"Admin\",\"Read\",\"List\",\"Tagging\",\"Write\"]}]}'"
        ' "$ak" "$sk" > /tmp/s3.json && '
        "exec weed server -dir=/data -ip.bind=0.0.0.0 -master.telemetry=false "
        f"-master.port={svc.console_port} -volume.max=0 -filer -s3 -s3.port={svc.port} "
        "-s3.config=/tmp/s3.json"
    )
    return ["sh", "-c", script]


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


def _env_block(wiring: Mapping[str, str], user: Mapping[str, Any]) -> dict[str, str]:
    env = dict(wiring)
    for key, value in user.items():
        # YAML booleans become the strings containers expect; `$` is literal (not interpolated).
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[key] = _dollar(text)
    return dict(sorted(env.items()))


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


def _env_example(values: StackValues) -> list[tuple[str, str, str]]:
    """(name, value, comment) rows of .env.example, for running Compose or the services."""
    s = values.services
    secret = values.s3.secret_key if values.s3.secret_key == DEFAULT_S3_CREDENTIALS[1] else ""
    mlflow_port = s.mlflow_server.host_port or s.mlflow_server.port
    s3_port = s.minio.host_port or s.minio.port
    return [
        ("GOOGLE_API_KEY", "", "Gemini API key (required by llm-connector; never commit it)"),
        ("GOOGLE_MODEL", values.llm.google_model, "Gemini model used by llm-connector"),
        ("MLFLOW_TRACKING_URI", f"http://localhost:{mlflow_port}", "MLflow from the host"),
        ("MLFLOW_S3_ENDPOINT_URL", f"http://localhost:{s3_port}", "S3 store from the host"),
        ("AWS_ACCESS_KEY_ID", values.s3.access_key, "S3 access key"),
        ("AWS_SECRET_ACCESS_KEY", secret,
         "S3 secret key" + ("" if secret else " (set it; not rendered from the values)")),
        ("AWS_DEFAULT_REGION", values.s3.region, "S3 region"),
    ]


def _config_name(base: str, content: str) -> str:
    return f"{base}_{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def _dollar(text: str) -> str:
    """Escape ``$`` for Compose/stack interpolation, keeping our own ``${VAR...}`` references."""
    # Our generated references (${AWS_...}, ${GOOGLE_API_KEY...}) are intentional; everything
    # else a user typed is literal. Callers apply this only to user text and scripts.
    return text.replace("$", "$$")


# ---------------------------------------------------------------------------------------------
# Jinja2
# ---------------------------------------------------------------------------------------------


def _q(value: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _qlist(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _env_value(value: str) -> str:
    """A .env value: bare when safe, else single-quoted (Compose's dotenv rules)."""
    if re.fullmatch(r"[A-Za-z0-9_./:@+,-]*", value):
        return value
    return "'" + value.replace("'", "") + "'"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _q
    env.filters["qlist"] = _qlist
    env.filters["envvalue"] = _env_value
    return env


# ---------------------------------------------------------------------------------------------
# Validation of rendered text
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _compose_validator() -> jsonschema.protocols.Validator:
    ref = importlib_resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(ref.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _check_env_file(filename: str, text: str) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        if line and not line.startswith("#") and not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", line):
            raise RenderError(f"{filename}:{n}: not a KEY=value line: {line!r}")


def _check_stack_file(
    values: StackValues, target: Target, filename: str, text: str, *, docker_check: bool
) -> None:
    try:
        doc = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise RenderError(f"{filename}: rendered text is not YAML: {exc}",
                          fix="a template bug: report it with the values used") from None
    if not isinstance(doc, dict):
        raise RenderError(f"{filename}: rendered text is not a mapping")
    errors = sorted(_compose_validator().iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RenderError(
            f"{filename}: {where}: {err.message} (Compose specification schema)",
            fix="check the values used for this key",
        )
    _semantic_checks(values, target, filename, doc, text)
    if target == "swarm" and docker_check:
        _docker_stack_config(filename, text)


def _semantic_checks(
    values: StackValues, target: Target, filename: str, doc: dict[str, Any], text: str
) -> None:
    """What the schema cannot see: references, port clashes, leaked secrets."""
    services: dict[str, Any] = doc.get("services") or {}
    declared = {
        kind: set((doc.get(kind) or {}).keys())
        for kind in ("networks", "volumes", "secrets", "configs")
    }
    published: dict[int, str] = {}
    for name, spec in services.items():
        for kind in ("networks", "volumes", "secrets", "configs"):
            for ref in spec.get(kind) or []:
                ref_name = _reference_name(kind, ref)
                if ref_name is not None and ref_name not in declared[kind]:
                    raise RenderError(f"{filename}: services.{name}.{kind}: {ref_name!r} is "
                                      f"not declared at the top level")
        for dep in spec.get("depends_on") or {}:
            if dep not in services:
                raise RenderError(f"{filename}: services.{name}.depends_on: unknown {dep!r}")
        replicas = (spec.get("deploy") or {}).get("replicas", 1)
        for i, port in enumerate(spec.get("ports") or []):
            host = int(port["published"])
            if host in published:
                raise RenderError(f"{filename}: services.{name}.ports.{i}: host port {host} "
                                  f"already published by {published[host]}")
            published[host] = name
            if target == "compose" and replicas > 1:
                raise RenderError(
                    f"{filename}: services.{name}: {replicas} replicas cannot all publish host "
                    f"port {host} under Compose",
                    fix=f"for Compose use services.{name}.replicas=1 or "
                    f"services.{name}.publish=false",
                )
    if target == "swarm":
        leaked = [values.s3.secret_key]
        if values.mlflow.backend_store == "postgres":
            leaked.append(values.mlflow.postgres_password)
        for secret in leaked:
            # Short values could match ordinary words; a real secret is long.
            if len(secret) >= 8 and secret in text:
                raise RenderError(f"{filename}: a secret value appears in the rendered file",
                                  fix="secrets must reach Swarm services as Docker secrets")


def _reference_name(kind: str, ref: Any) -> str | None:
    if kind == "volumes":
        source = ref.get("source") if isinstance(ref, dict) else str(ref).split(":", 1)[0]
        if not source or source.startswith(("/", ".", "~")):
            return None  # a bind mount
        return str(source)
    if isinstance(ref, dict):
        return str(ref.get("source"))
    return str(ref)


def _docker_stack_config(filename: str, text: str) -> None:
    docker = shutil.which("docker")
    if docker is None:
        return
    try:
        proc = subprocess.run(
            [docker, "stack", "config", "--compose-file", "-"],
            input=text, capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"{filename}: `docker stack config` could not run: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
        raise RenderError(f"{filename}: rejected by `docker stack config`: {detail}",
                          fix="check the values used for the named key")
