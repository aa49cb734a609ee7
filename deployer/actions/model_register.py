"""Registering a Keras model file as a new version of the stack's CNN model, on the stack's own
host, so that a remote user needs nothing but the deployer and the file.

``python -m cnn_image.register`` (the general command the main job uses) runs in a one-off
container of the very image ``cnn-image`` runs (TensorFlow, MLflow's client and the command are
in it), attached to the stack's network, where MLflow answers by its service name and proxies
the artifacts into the stack's S3. The file crosses the connection on the container's stdin:
nothing is written to the manager's disk, no port is opened, and nothing stays running
(``--rm``). Then, like a promotion, the stack's lock and audit log, and a wait until cnn-image
serves the new version (it polls its alias, no restart).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.actions.base import ActionContext, locked, record
from deployer.actions.models import Endpoints, served_models
from deployer.actions.services import deployed
from deployer.engine.client import docker_errors
from deployer.errors import ConfigError, DeployError, MlopsError
from deployer.options import MODEL_INPUT_SCALINGS as INPUT_SCALINGS
from deployer.options import MODEL_OUTPUTS as OUTPUTS

CNN_SERVICE = "cnn-image"
#: What the command reads from the service's environment: where MLflow is and which model.
#: Nothing else is passed on (no S3 keys, no secret files: MLflow proxies the artifacts).
PASSED_ENV = ("MLFLOW_TRACKING_URI", "MODEL_NAME", "MLFLOW_EXPERIMENT_NAME")
#: A model file's name as it goes into the version's provenance (``source.file``).
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(h5|keras)")
MAX_BYTES = 1 << 30
#: In the container: the file from stdin into a temp dir under its own name, then the command
#: with the remaining arguments (argv items, never a shell string built from user input).
SCRIPT = ('d=$(mktemp -d) && f="$d/$1" && shift && cat > "$f" && '
          'exec python3 -m cnn_image.register "$f" "$@"')
REGISTERED = re.compile(r"^registered (\S+) version (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class ModelFile:
    """A Keras model file read on the deploying machine."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class RegisterRequest:
    """What to register and how it is served (``cnn_image.register``'s options)."""

    file: ModelFile
    outputs: str
    input_scaling: str
    source: str
    licence: str
    alias: str | None = "champion"
    if_missing: bool = False
    class_names: str | None = None

    def argv(self) -> list[str]:
        """The command's options after the file."""
        out = ["--outputs", self.outputs, "--input-scaling", self.input_scaling,
               "--source", self.source, "--licence", self.licence]
        if self.alias:
            out += ["--alias", self.alias]
        if self.if_missing:
            out.append("--if-missing")
        if self.class_names:
            out += ["--class-names", self.class_names]
        return out


def read_model_file(path: Path) -> ModelFile:
    """The file's bytes; ``ConfigError`` naming the file when it cannot be a Keras model file."""
    if not FILE_NAME.fullmatch(path.name):
        raise ConfigError(f"{path}: expected a Keras model file named NAME.h5 or NAME.keras "
                          "(letters, digits, . _ -)", fix="rename the file")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ConfigError(f"{path}: not a file", fix="give the model file itself")
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size / 1e6:.0f} MB, more than a CIFAR-10 CNN needs "
                              f"(limit {MAX_BYTES / 1e6:.0f} MB)", fix="check the file")
        return ModelFile(path.name, path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}",
                          fix="give the path of an existing Keras .h5/.keras file") from exc


def check_request(req: RegisterRequest) -> None:
    """Refuse bad options before any host is contacted."""
    if req.outputs not in OUTPUTS:
        raise ConfigError(f"--outputs {req.outputs!r}: expected one of {', '.join(OUTPUTS)}")
    if req.input_scaling not in INPUT_SCALINGS:
        raise ConfigError(f"--input-scaling {req.input_scaling!r}: expected one of "
                          f"{', '.join(INPUT_SCALINGS)}")
    for option, value in (("--source", req.source), ("--licence", req.licence)):
        if not value.strip():
            raise ConfigError(f"{option} is empty", fix="say where the file comes from and "
                              "under which licence (they become the version's tags)")


def _service_spec(ctx: ActionContext) -> tuple[str, str, dict[str, str]]:
    """cnn-image's image, first network and the passed environment, from its service spec."""
    found = deployed(ctx)
    if found.service(CNN_SERVICE) is None:
        raise DeployError(f"stack {ctx.stack} runs no {CNN_SERVICE} on {ctx.host}",
                          fix="deploy the stack first (`deployer push`)")
    with docker_errors(ctx.host):
        spec: dict[str, Any] = ctx.conn.docker_client().api.inspect_service(
            f"{ctx.stack}_{CNN_SERVICE}")["Spec"]
    task = spec["TaskTemplate"]
    networks = [n["Target"] for n in task.get("Networks") or []]
    if not networks:
        raise DeployError(f"{ctx.stack}_{CNN_SERVICE} is on no network: MLflow is not reachable "
                          "from a container beside it", fix="deploy the stack's own file")
    pairs = (item.partition("=") for item in task["ContainerSpec"].get("Env") or [])
    env = {k: v for k, _, v in pairs if k in PASSED_ENV}
    return task["ContainerSpec"]["Image"], networks[0], env


def container_name(stack: str) -> str:
    return f"{stack}-register-{uuid.uuid4().hex[:8]}"


def container_argv(stack: str, image: str, network: str, env: dict[str, str],
                   req: RegisterRequest, name: str) -> list[str]:
    """``docker run`` of the registration beside the stack (labelled as the stack's, named so
    that a run that is interrupted can remove it: it must not go on after the lock is gone)."""
    argv = ["docker", "run", "--rm", "-i", "--name", name, "--pull", "never",
            "--network", network, "--label", f"io.mlops.stack={stack}", "--entrypoint", "sh"]
    for key, value in sorted(env.items()):
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, "-c", SCRIPT, "sh", req.file.name, *req.argv()]


def register_model(ctx: ActionContext, req: RegisterRequest, *,
                   endpoints: Endpoints | None = None) -> str | None:
    """Register ``req.file``; returns the new version (``None``: ``--if-missing`` and the alias
    was set already). Waits until cnn-image serves it when it became the served alias."""
    image, network, env = _service_spec(ctx)
    name = env.get("MODEL_NAME", "cifar10-cnn")
    container = container_name(ctx.stack)
    argv = container_argv(ctx.stack, image, network, env, req, container)
    with locked(ctx) as state:
        ctx.events.info(f"registering {req.file.name} ({len(req.file.data) / 1e6:.1f} MB) "
                        f"as {name} in a container of {image}", level=1)
        try:
            result = ctx.conn.run(argv, stdin=req.file.data, timeout=ctx.timeout, check=False)
        except BaseException:
            # Timed out, interrupted or cut off: the container would go on registering (and
            # moving the alias) after the lock is released. Best effort: the link may be gone.
            with contextlib.suppress(MlopsError):
                ctx.conn.run(["docker", "rm", "-f", container], check=False, timeout=30)
            raise
        lines = [x for x in result.stdout.splitlines() if x.startswith(("registered", "ok:"))]
        if result.returncode != 0 or not lines:
            errors = [x for x in result.stderr.splitlines() if x.startswith("error")]
            detail = "\n    ".join(errors or result.stderr.strip().splitlines()[-5:])
            raise (ConfigError if result.returncode == 2 else DeployError)(
                f"registering {req.file.name} on {ctx.host} failed (exit "
                f"{result.returncode}):\n    {detail or '(no output)'}",
                fix="check the file and its options; `deployer logs mlflow-server` for MLflow")
        match = REGISTERED.search(result.stdout)
        if match is None:
            ctx.events.step(ctx.host, "ok", "register-model", name, lines[0])
            return None
        version = match.group(2)
        ctx.events.step(ctx.host, "changed", "register-model", f"{name} version {version}",
                        f"{req.file.name}{' as @' + req.alias if req.alias else ''}")
        record(ctx, state, "register-model", model=name, version=version, alias=req.alias,
               file=req.file.name, sha256=req.file.sha256, source=req.source,
               licence=req.licence)
    if req.alias == "champion" and ctx.wait:
        _wait_served(ctx, name, version, endpoints or {})
    return version


def _wait_served(ctx: ActionContext, name: str, version: str, endpoints: Endpoints) -> None:
    """Until cnn-image's ``GET /model`` names ``version`` (its alias poll), within the timeout."""
    deadline = time.monotonic() + ctx.timeout
    served: Sequence[Any] = ()
    while time.monotonic() < deadline:
        served = [s for s in served_models(ctx, deployed(ctx), endpoints)
                  if s.service == CNN_SERVICE]
        if served and served[0].version == version:
            ctx.events.step(ctx.host, "ok", "serve", f"{CNN_SERVICE}", f"{name} version {version}")
            return
        if served and served[0].problem == "no published port":
            ctx.events.info(f"{CNN_SERVICE} publishes no port: not waiting for it to serve "
                            f"version {version} (it polls its alias)")
            return
        time.sleep(2)
    now = served[0].version or served[0].problem if served else "no answer"
    raise DeployError(f"{CNN_SERVICE} still serves {now} {ctx.timeout:.0f} s after version "
                      f"{version} was registered", fix="`deployer logs cnn-image`")
