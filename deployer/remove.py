"""``remove``: take a stack off a manager — services and networks (``docker stack rm``), then the
secrets and configs the deployer created for it, and its volumes only when asked.

Volumes are local to the node that ran the tasks; through a manager's engine we reach the
manager's own. Objects are found by label, never by name pattern: the stack namespace label that
``docker stack deploy`` sets, and ``io.mlops.stack`` on what ``push`` created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployer.engine import objects
from deployer.engine.client import docker_errors
from deployer.operations import SECRET_STACK_LABEL
from deployer.polling import poll_until
from deployer.swarm import STACK_LABEL

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True)
class StackObjects:
    """What of a stack exists on the manager's engine, by name."""

    services: tuple[str, ...]
    networks: tuple[str, ...]
    secrets: tuple[str, ...]
    configs: tuple[str, ...]
    volumes: tuple[str, ...]
    containers: int

    @property
    def deployed(self) -> bool:
        return bool(self.services or self.networks)

    @property
    def empty(self) -> bool:
        return not (self.deployed or self.secrets or self.configs or self.volumes)


def stack_rm_argv(stack: str) -> list[str]:
    return ["docker", "stack", "rm", stack]


def stack_objects(client: docker.DockerClient, stack: str, host: str) -> StackObjects:
    """The stack's services, networks, deployer-made secrets/configs, volumes and containers."""
    ns = {"label": f"{STACK_LABEL}={stack}"}
    own = {"label": f"{SECRET_STACK_LABEL}={stack}"}
    api = client.api
    with docker_errors(host):
        return StackObjects(
            services=tuple(sorted(s["Spec"]["Name"] for s in api.services(filters=ns))),
            networks=tuple(sorted(n["Name"] for n in api.networks(filters=ns))),
            secrets=tuple(sorted(s["Spec"]["Name"] for s in api.secrets(filters=own))),
            configs=tuple(sorted(c["Spec"]["Name"] for c in api.configs(filters=own))),
            volumes=tuple(sorted(
                v["Name"] for v in (api.volumes(filters=ns).get("Volumes") or [])
            )),
            containers=len(api.containers(all=True, filters=ns)),
        )


def wait_gone(client: docker.DockerClient, stack: str, host: str, timeout: float) -> None:
    """Until the stack's services and networks are gone."""
    poll_until(f"stack {stack}'s services and networks were not removed",
               lambda: not stack_objects(client, stack, host).deployed, timeout,
               fix="check `docker service ls` / `docker ps` on the manager and rerun "
               "`deployer remove` (it continues where it stopped)")


def remove_task_containers(client: docker.DockerClient, stack: str, host: str) -> int:
    """Remove the stack's stopped task containers; returns how many were removed.

    Swarm keeps the exited containers of finished tasks (a completed job such as bucket-init,
    replaced tasks) after ``docker stack rm`` until its task history is pruned; they still
    reference the stack's volumes and would outlive it. Called once the services are gone, so
    nothing restarts them; running containers (still stopping) are left to Swarm.
    """
    return objects.remove_stopped_containers(client, host, f"{STACK_LABEL}={stack}")


def remove_objects(
    client: docker.DockerClient, host: str, kind: str, names: tuple[str, ...], timeout: float
) -> list[str]:
    """Remove secrets, configs or volumes by name; returns the names kept because in use."""
    return objects.remove_all(client, host, kind, names, timeout)
