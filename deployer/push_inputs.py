"""What a push deploys, resolved before anything changes: the options, the images (by ID, from
the local engine and the manager), the secrets' values (the Gemini key from the environment or
an env file; never stored) and versions, the rendered stack file, and the inputs' hash that
tells an unchanged push without rendering."""


from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deployer import __version__, facts, ship
from deployer.errors import ConfigError
from deployer.operations import (
    Desired,
    ImageRef,
    SecretRef,
    secret_version,
)
from deployer.options import GOOGLE_ENV, GOOGLE_KEY

if TYPE_CHECKING:
    import docker

    from deployer.values import StackValues

#: The content deployed for an allowed missing secret. Docker refuses empty secrets; the
#: services strip their *_FILE contents and treat a blank value as "not configured" (the
#: llm-connector then stays healthy and answers 503 "Gemini API key not configured").
MISSING_SECRET_PLACEHOLDER = "\n"


@dataclass(frozen=True)
class PushOptions:
    check: bool = False
    diff: bool = False
    resolve_image: str = "never"
    timeout: float = 300.0
    break_lock: bool = False
    force: bool = False
    rollback: bool = True
    env_file: str | None = None
    allow_missing: tuple[str, ...] = ()  # secret bases deployed as a blank placeholder if unset


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file, parsed by python-dotenv (comments, ``export``,
    quotes, escapes); a line it cannot parse is an error naming it (dotenv itself only warns)."""
    from dotenv.parser import parse_stream

    out: dict[str, str] = {}
    with path.open() as stream:
        for binding in parse_stream(stream):
            if binding.error:
                raise ConfigError(f"{path}:{binding.original.line}: expected KEY=VALUE",
                                  fix="one KEY=VALUE per line; # starts a comment")
            if binding.key is not None:
                out[binding.key] = binding.value or ""
    return out


def google_api_key(env_file: str | None) -> str:
    """The Gemini key: ``$GOOGLE_API_KEY``, else the ``.env`` file (``--env-file``, default
    ``./.env`` when present). Never logged."""
    value = os.environ.get(GOOGLE_ENV)
    if value:
        return value
    path = Path(env_file) if env_file else Path(".env")
    if env_file and not path.is_file():
        raise ConfigError(f"--env-file {path} does not exist")
    if path.is_file():
        value = read_env_file(path).get(GOOGLE_ENV)
        if value:
            return value
    raise ConfigError(
        f"{GOOGLE_ENV} is not set (the llm-connector's Gemini key, deployed as a Swarm secret)",
        fix=f"export {GOOGLE_ENV}=... or put it in a .env file (--env-file FILE); or deploy "
        f"without it: --allow-missing-secret {GOOGLE_KEY} (the LLM tab then says no key is "
        "configured)",
    )


@dataclass(frozen=True)
class Inputs:
    """What the Swarm file is rendered from, resolved (cheap: no render, no manager call when
    the local engine has the images)."""

    stack: str
    versions: Mapping[str, str]  # secret base -> version
    secret_values: Mapping[str, str]  # secret base -> value (never printed)
    images: Mapping[str, ImageRef]
    services: tuple[str, ...]  # services and jobs of the stack
    hash: str


@dataclass(frozen=True)
class Prepared:
    """Everything a push decided locally: the desired state and the objects to create."""

    desired: Desired
    secret_values: Mapping[str, str]  # Swarm secret name -> value (never printed)
    configs: Mapping[str, str]  # Swarm config name -> content


def image_refs(values: StackValues) -> dict[str, str]:
    """Image reference of each service and job as the values set it."""
    from deployer.values import MinioService

    refs: dict[str, str] = {}
    for name, svc in values.active_services().items():
        image = svc.image
        if image is None and isinstance(svc, MinioService):
            s3 = values.s3
            image = s3.minio_image if s3.backend == "minio" else s3.seaweedfs_image
        if image is not None:
            refs[name] = image
    for name, job in values.jobs.by_name().items():
        refs[name] = job.image
    return refs


def _templates_hash() -> str:
    from deployer.resources import templates_dir

    digest = hashlib.sha256(__version__.encode())
    for path in sorted(templates_dir().glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def resolve_inputs(
    values: StackValues,
    manager: Callable[[], docker.DockerClient],
    local: docker.DockerClient | None,
    host: str,
    *,
    env_file: str | None = None,
    allow_missing: tuple[str, ...] = (),
) -> Inputs:
    from deployer.render import swarm_secret_values
    from deployer.values import values_hash

    try:
        key = google_api_key(env_file)
    except ConfigError:
        if GOOGLE_KEY not in allow_missing:
            raise
        key = MISSING_SECRET_PLACEHOLDER
    raw_values = {GOOGLE_KEY: key, **swarm_secret_values(values)}
    versions = {base: secret_version(value) for base, value in raw_values.items()}
    resolved = facts.resolve_images(local, manager, image_refs(values), host)
    images = {
        service: ImageRef(service, ship.pinned_ref(ref, ident.id), ident.id, ident.key)
        for service, (ref, ident) in resolved.items()
    }
    digest = hashlib.sha256()
    for part in (
        values_hash(values),
        json.dumps(versions, sort_keys=True),
        json.dumps({s: i.id for s, i in images.items()}, sort_keys=True),
        _templates_hash(),
    ):
        digest.update(part.encode() + b"\0")
    services = (*values.active_services(), *values.jobs.by_name())
    return Inputs(values.stack.name, versions, raw_values, images, tuple(services),
                  digest.hexdigest())


def prepare(values: StackValues, inputs: Inputs) -> Prepared:
    """Render the Swarm file with pinned images and versioned secrets (no change anywhere)."""
    from deployer.render import render, secret_name, swarm_configs
    from deployer.values import values_hash

    final = render(values, "swarm", secret_versions=inputs.versions,
                   images={s: i.ref for s, i in inputs.images.items()})
    secrets = {
        base: SecretRef(base, secret_name(base, version), version)
        for base, version in inputs.versions.items()
    }
    desired = Desired(values.stack.name, final.text, values_hash(values), inputs.images, secrets,
                      inputs.hash)
    return Prepared(
        desired,
        {secrets[base].name: value for base, value in inputs.secret_values.items()},
        swarm_configs(values),
    )
