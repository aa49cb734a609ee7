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
from deployer.operations import ManagerFacts
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


def manager_facts(client: docker.DockerClient, host: str) -> ManagerFacts:
    """Image IDs and tags present, and secrets (name -> labels), on the manager's engine."""
    with docker_errors(host):
        images = client.api.images()
        secrets = client.api.secrets()
    ids = frozenset(str(i["Id"]) for i in images)
    tags = frozenset(tag for i in images for tag in (i.get("RepoTags") or ()))
    return ManagerFacts(
        image_ids=ids,
        image_tags=tags,
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
) -> dict[str, tuple[str, str]]:
    """For each service, (ref, image ID): looked up on the local engine first (where images are
    built), then on the manager (client made only if needed). ``DeployError`` names the images
    found nowhere."""
    found: dict[str, tuple[str, str]] = {}
    missing: list[str] = []
    cache: dict[str, str | None] = {}
    for service, ref in refs.items():
        if ref not in cache:
            ident = image_id(local, ref, "local") if local is not None else None
            if ident is None:
                ident = image_id(manager(), ref, host)
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
