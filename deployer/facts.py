"""Read-only probes of a host: what is deployed, which images and secrets it has.

Nothing here changes anything. ``stack_state`` is the one cheap remote read a no-op push needs;
the others are Docker API calls made only when something is to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.errors import DeployError
from deployer.operations import ImageRef, ManagerFacts
from deployer.state import StackState, read_state
from deployer.swarm import STACK_LABEL

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector

__all__ = ["image_id", "manager_facts", "service_specs", "stack_state"]


def stack_state(conn: Connector, stack: str) -> StackState:
    """Deployed revision, its meta and the lock (one remote command), and the live service
    names from the Engine API on the open channel: no `docker service ls` process on the
    manager, which costs it a CLI start."""
    state = read_state(conn, stack, with_services=False)
    live = service_versions(conn.docker_client(), stack, conn.host)
    return dataclasses.replace(state, live_services=tuple(live))


def image_id(client: docker.DockerClient, ref: str, host: str) -> str | None:
    """The ID of image ``ref`` on the engine of ``client``, or None if absent."""
    return objects.image_id(client, ref, host)


def manager_facts(client: docker.DockerClient, host: str,
                  images: Iterable[ImageRef] = ()) -> ManagerFacts:
    """Which of ``images`` the manager's engine has (by content: two inspects each, by ref and
    by ID, whatever its image store calls them) under which of their refs, and its secrets
    (name -> labels)."""
    found: dict[str, str] = {}
    tagged: set[str] = set()
    for image in images:
        for name in (image.ref, image.id):
            there = objects.image_identity(client, name, host)
            if there is not None and there.key == image.key:
                found[image.key] = there.id
                if name == image.ref:
                    tagged.add(image.ref)
                    break
    with docker_errors(host):
        secrets = client.api.secrets()
    return ManagerFacts(
        images=found,
        image_tags=frozenset(tagged),
        secrets={
            str(s["Spec"]["Name"]): dict(s["Spec"].get("Labels") or {}) for s in secrets
        },
    )


def service_specs(client: docker.DockerClient, stack: str, host: str) -> dict[str, Any]:
    """Live service specs of ``stack`` keyed by short name (volatile fields not included)."""
    with docker_errors(host):
        services = client.api.services(filters={"label": f"{STACK_LABEL}={stack}"})
    return {
        str(s["Spec"]["Name"]).removeprefix(f"{stack}_"): s["Spec"] for s in services
    }


def service_versions(client: docker.DockerClient, stack: str, host: str) -> dict[str, int]:
    """``Version.Index`` of each service of ``stack`` (changes with every update)."""
    with docker_errors(host):
        services = client.api.services(filters={"label": f"{STACK_LABEL}={stack}"})
    return {
        str(s["Spec"]["Name"]).removeprefix(f"{stack}_"): int(s["Version"]["Index"])
        for s in services
    }


def resolve_images(
    local: docker.DockerClient | None,
    manager: Callable[[], docker.DockerClient],
    refs: dict[str, str],
    host: str,
) -> dict[str, tuple[str, objects.ImageIdentity]]:
    """For each service, (ref, the image's identity): looked up on the local engine first
    (where images are built), then on the manager (client made only if needed).
    ``DeployError`` names the images found nowhere."""
    found: dict[str, tuple[str, objects.ImageIdentity]] = {}
    missing: list[str] = []
    cache: dict[str, objects.ImageIdentity | None] = {}
    for service, ref in refs.items():
        if ref not in cache:
            ident = objects.image_identity(local, ref, "local") if local is not None else None
            if ident is None:
                ident = objects.image_identity(manager(), ref, host)
            cache[ref] = ident
        ident = cache[ref]
        if ident is None:
            missing.append(f"{ref} ({service})")
        else:
            found[service] = (ref, ident)
    if missing:
        raise DeployError(
            f"image(s) not found locally nor on {host}: {', '.join(missing)}",
            fix="build them (`deployer build`) or load them with `docker load`",
        )
    return found


def names(items: Iterable[str]) -> list[str]:
    return sorted(set(items))
