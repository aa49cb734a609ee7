"""The Swarm read model: services, tasks and nodes of a stack as the project's frozen dataclasses.

One query shared by ``deployer status``, the deployer's convergence wait and ``mlops-tui``. It
costs at most three Docker API calls whatever the number of services (services with their
``ServiceStatus`` counts, tasks, nodes), all filtered server-side by the stack label.

Parsing is pure and separate from I/O: ``parse`` turns the raw Engine API JSON into a
``SwarmSnapshot`` (tests feed it recorded JSON); ``read`` does the calls; ``model`` holds the
dataclasses; ``events`` diffs two snapshots.
"""

from deployer.swarm.events import (
    SwarmEvent,
    diff_snapshots,
)
from deployer.swarm.model import (
    FAILED_TASK_STATES,
    STACK_LABEL,
    TERMINAL_TASK_STATES,
    UPDATE_IN_PROGRESS,
    EventKind,
    Health,
    Json,
    NodeState,
    PortState,
    ServiceMode,
    ServiceState,
    SwarmApi,
    SwarmSnapshot,
    TaskState,
)
from deployer.swarm.parse import (
    derive_health,
    parse_node,
    parse_nodes,
    parse_service,
    parse_snapshot,
    parse_task,
    parse_time,
    running_by_node,
    short_service_name,
    strip_digest,
)
from deployer.swarm.read import (
    read_nodes,
    read_snapshot,
    stack_filters,
)

__all__ = [
    "EventKind",
    "FAILED_TASK_STATES",
    "Health",
    "Json",
    "NodeState",
    "PortState",
    "STACK_LABEL",
    "ServiceMode",
    "ServiceState",
    "SwarmApi",
    "SwarmEvent",
    "SwarmSnapshot",
    "TERMINAL_TASK_STATES",
    "TaskState",
    "UPDATE_IN_PROGRESS",
    "derive_health",
    "diff_snapshots",
    "parse_node",
    "parse_nodes",
    "parse_service",
    "parse_snapshot",
    "parse_task",
    "parse_time",
    "read_nodes",
    "read_snapshot",
    "running_by_node",
    "short_service_name",
    "stack_filters",
    "strip_digest",
]
