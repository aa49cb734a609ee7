"""The read model's I/O: a stack's services, tasks and nodes in at most three Docker API calls,
whatever the number of services, filtered server-side by the stack label."""

from __future__ import annotations

from typing import Any

from deployer.swarm.model import STACK_LABEL, NodeState, SwarmApi, SwarmSnapshot
from deployer.swarm.parse import parse_nodes, parse_snapshot


def stack_filters(stack: str | None) -> dict[str, Any]:
    """The server-side filter selecting a stack's objects (none: everything)."""
    return {"label": f"{STACK_LABEL}={stack}"} if stack else {}


def read_snapshot(
    api: SwarmApi, stack: str | None = None, *, include_nodes: bool = True
) -> SwarmSnapshot:
    """Read a stack (or every service when ``stack`` is None) in at most three API calls.

    Errors of the Docker SDK propagate; callers map them
    (``deployer.engine.client.docker_errors``).
    """
    filters = stack_filters(stack)
    services = api.services(filters=filters, status=True)
    tasks = api.tasks(filters=filters)
    nodes = api.nodes() if include_nodes else []
    return parse_snapshot(services, tasks, nodes, stack=stack)


def read_nodes(api: SwarmApi) -> tuple[NodeState, ...]:
    """Every node of the swarm with the number of tasks (of any service) running on it: two
    API calls whatever the size of the cluster."""
    return parse_nodes(api.nodes(), api.tasks(filters={"desired-state": "running"}))
