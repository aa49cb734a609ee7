"""Registry mode: the team's registry instead of shipping over SSH.

``publish`` pushes each image from the local engine to ``registry.url`` (the engine uploads only
layers the registry lacks) and returns digest-pinned references (``URL/path@sha256:...``) for
the stack file; with ``check`` it only asks the registry which images it already has.
``registry_auth`` runs ``docker stack deploy --with-registry-auth`` on the manager with a
``DOCKER_CONFIG`` that exists only for that command, in the manager's RAM (``/dev/shm``, 0600),
so the nodes get the credentials through Swarm and no disk ever holds them.

Credentials: ``$MLOPS_REGISTRY_USERNAME`` / ``$MLOPS_REGISTRY_PASSWORD``, else the values'
``registry.username`` + ``registry.password_file``. Never logged, never in an argv.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deployer import ship
from deployer.engine.client import docker_errors
from deployer.errors import ConfigError, DeployError, DockerError, MlopsError
from deployer.shipping.local_push import repository_path
from deployer.shipping.progress import follow, human

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.events import Events
    from deployer.values import Registry

USER_ENV = "MLOPS_REGISTRY_USERNAME"
PASSWORD_ENV = "MLOPS_REGISTRY_PASSWORD"
#: RAM-backed on Linux: the deploy's short-lived docker CLI config never reaches a disk.
AUTH_DIR_ROOT = "/dev/shm"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def credentials(registry: Registry) -> Credentials | None:
    """The registry login, or None (anonymous) when none is configured."""
    username = os.environ.get(USER_ENV) or registry.username
    password = os.environ.get(PASSWORD_ENV)
    if not password and registry.password_file:
        path = Path(registry.password_file).expanduser()
        try:
            password = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"registry.password_file {path}: cannot read it ({exc.strerror})",
                fix=f"point registry.password_file at a readable file, or export {PASSWORD_ENV}",
            ) from exc
    if not password:
        return None
    if not username:
        raise ConfigError(
            f"registry {registry.url}: a password is set but no user name",
            fix=f"set registry.username in the values or export {USER_ENV}",
        )
    return Credentials(username, password)


def registry_error(url: str, text: str, creds: Credentials | None) -> DeployError:
    """The engine's words about a registry failure, with the fix for the usual causes."""
    low = text.lower()
    if "x509" in low or "certificate" in low:
        return DeployError(
            f"registry {url}: its TLS certificate is not trusted ({text.strip()})",
            fix=f"install the registry's CA certificate as /etc/docker/certs.d/{url}/ca.crt on "
            "this machine and on every Swarm node (no engine restart needed)",
        )
    if "unauthorized" in low or "authentication required" in low or "denied" in low or (
        "401" in low
    ):
        who = f"user {creds.username!r}" if creds else "no credentials"
        return DeployError(
            f"registry {url}: the login was refused ({who}): {text.strip()}",
            fix=f"check {USER_ENV} / {PASSWORD_ENV} (or registry.username and "
            "registry.password_file) and that the user may push",
        )
    if "connection refused" in low or "no such host" in low or "timeout" in low:
        return DeployError(f"registry {url}: unreachable ({text.strip()})",
                           fix="check registry.url (host and port) and that it runs")
    return DeployError(f"registry {url}: {text.strip()}")


def target_repo(url: str, ref: str) -> tuple[str, str]:
    """(``URL/path``, tag) where ``ref`` (``repo:tag``) is published."""
    repo, tag = ship.split_ref(ref)
    return f"{url}/{repository_path(repo)}", tag


def publish(
    local: docker.DockerClient,
    registry: Registry,
    images: Mapping[str, tuple[str, str]],
    events: Events,
    *,
    check: bool = False,
) -> dict[str, str]:
    """Push ``{service: (pinned ref, image id)}`` to the registry; ``{service: URL/path@digest}``.

    With ``check`` nothing is pushed: images already there get their digest, the others their
    tag reference and a "would push" line with their size.
    """
    creds = credentials(registry)
    auth = creds.auth_config() if creds else None
    out: dict[str, str] = {}
    done: dict[str, str] = {}
    for service, (ref, image_id) in images.items():
        if ref in done:
            out[service] = done[ref]
            continue
        repo, tag = target_repo(registry.url, ref)
        try:
            with docker_errors("local"):
                pinned = (_existing(local, repo, tag, image_id, auth) if check
                          else _push(local, repo, tag, image_id, auth, events))
        except DockerError as exc:
            raise registry_error(registry.url, exc.explanation or exc.message, creds) from exc
        except MlopsError as exc:
            raise registry_error(registry.url, exc.message, creds) from exc
        if pinned is None:  # --check, not in the registry yet
            size = int(local.api.inspect_image(image_id)["Size"])
            events.info(f"{ref}: would push to {registry.url} (layers it lacks; image "
                        f"{human(size)} uncompressed)")
            pinned = f"{repo}:{tag}"
        done[ref] = out[service] = pinned
    return out


def _existing(local: docker.DockerClient, repo: str, tag: str, image_id: str,
              auth: dict[str, str] | None) -> str | None:
    try:
        with docker_errors("local"):
            found = local.api.inspect_distribution(f"{repo}:{tag}", auth_config=auth)
    except DockerError as exc:
        text = (exc.explanation or exc.message).lower()
        if "not found" in text or "manifest unknown" in text or exc.status == 404:
            return None
        raise
    digest = str(found["Descriptor"]["digest"])
    return f"{repo}@{digest}"


def _push(local: docker.DockerClient, repo: str, tag: str, image_id: str,
          auth: dict[str, str] | None, events: Events) -> str:
    events.info(f"$ docker tag {image_id} {repo}:{tag}", level=1)
    events.info(f"$ docker push {repo}:{tag}", level=1)
    with docker_errors("local"):
        local.api.tag(image_id, repo, tag)
    stats = follow(local.api.push(repo, tag, stream=True, decode=True, auth_config=auth),
                   pull=False)
    if not stats.digest:
        raise DeployError(f"the push of {repo}:{tag} reported no digest")
    events.info(f"{repo}:{tag}: {len(stats.moved)} of {stats.layers} layers pushed "
                f"({human(stats.total_bytes)} uncompressed), {stats.digest}")
    return f"{repo}@{stats.digest}"


def docker_config(url: str, creds: Credentials) -> bytes:
    """A docker CLI config.json holding one login (what ``docker login`` would write)."""
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    host = url.split("/", 1)[0]
    return json.dumps({"auths": {host: {"auth": token}}}).encode()


@contextlib.contextmanager
def registry_auth(conn: Connector, registry: Registry) -> Iterator[list[str]]:
    """Yields the argv prefix for a ``docker stack deploy`` that passes the registry login to
    the nodes (append ``--with-registry-auth`` to the deploy's argv)."""
    creds = credentials(registry)
    if creds is None:
        yield []
        return
    directory = f"{AUTH_DIR_ROOT}/mlops-auth-{uuid.uuid4().hex}"
    conn.put_file(docker_config(registry.url, creds), f"{directory}/config.json", mode=0o600)
    try:
        yield ["env", f"DOCKER_CONFIG={directory}"]
    finally:
        conn.run(["rm", "-rf", "--", directory], check=False)


def with_registry_auth(argv: list[str]) -> list[str]:
    """``docker stack deploy ...`` with ``--with-registry-auth`` right after ``deploy``."""
    if "--with-registry-auth" in argv:
        return argv
    at = argv.index("deploy") + 1 if "deploy" in argv else len(argv)
    return [*argv[:at], "--with-registry-auth", *argv[at:]]



def prepull(client: docker.DockerClient, registry: Registry, refs: list[str], events: Events,
            host: str) -> None:
    """Pull the digest-pinned ``refs`` on the manager's engine with the login (through the API:
    the credentials travel in a request header, never to a file). Swarm would pull them per task
    too, but an engine started with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 never does, and a
    failed pull then only surfaces as "No such image" after the deploy."""
    creds = credentials(registry)
    auth = creds.auth_config() if creds else None
    for ref in sorted(set(refs)):
        repo, _, digest = ref.partition("@")
        events.info(f"$ docker pull {ref}  # on {host}", level=1)
        try:
            with docker_errors(host):
                stats = follow(client.api.pull(repo, tag=digest, stream=True, decode=True,
                                               auth_config=auth), pull=True)
        except MlopsError as exc:
            raise registry_error(registry.url, f"{host} could not pull {ref}: {exc.message}",
                                 creds) from exc
        if stats.moved:
            events.info(f"{ref}: {len(stats.moved)} of {stats.layers} layers pulled by {host} "
                        f"({human(stats.total_bytes)})")


def require_registry(registry: Registry | None) -> Registry:
    """The values' registry, or the error ``build --push`` gives without one."""
    if registry is None:
        raise ConfigError(
            "build --push needs a registry: registry.url is not set in the values",
            fix="add `registry: {url: HOST[:PORT][/PATH]}` to a values file (-f) or "
            "--set registry.url=HOST:PORT; without a registry, `deployer push` ships the "
            "images over SSH",
        )
    return registry


def publish_built(
    local: docker.DockerClient,
    registry: Registry | None,
    built: Mapping[str, tuple[str, str]],
    events: Events,
) -> dict[str, str]:
    """``deployer build --push``: upload ``{service: (values ref, image id)}`` under the same
    pinned tag a later ``push`` uses (``repo:<id>``), so that push uploads nothing again."""
    registry = require_registry(registry)
    images = {s: (ship.pinned_ref(ref, image_id), image_id) for s, (ref, image_id) in
              built.items()}
    pinned = publish(local, registry, images, events)
    for service, ref in sorted(pinned.items()):
        events.step("local", "changed", "push-image", ref, service)
    return pinned
