"""The Swarm read model's dataclasses (services, tasks, nodes, a snapshot of a stack) and the
states they are judged by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

STACK_LABEL = "com.docker.stack.namespace"


ServiceMode = Literal["replicated", "global", "replicated-job", "global-job"]


#: Health of a service as derived from its tasks (Swarm has no per-service health field).
Health = Literal[
    "healthy", "starting", "unhealthy", "failing", "degraded", "idle", "complete", "failed"
]


#: Task states after which a task never runs again (Swarm's terminal states).
TERMINAL_TASK_STATES = frozenset(
    {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}
)


#: Terminal states that mean the task went wrong (as opposed to being replaced or finishing).
FAILED_TASK_STATES = frozenset({"failed", "rejected", "orphaned"})


#: UpdateStatus states in which Swarm is still changing the service.
UPDATE_IN_PROGRESS = frozenset({"updating", "rollback_started", "paused", "rollback_paused"})


_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


Json = Mapping[str, Any]


class SwarmApi(Protocol):
    """The three ``docker.APIClient`` methods the read model uses (eases fakes and wrappers)."""

    def services(
        self, filters: dict[str, Any] | None = ..., status: bool | None = ...
    ) -> list[dict[str, Any]]: ...

    def tasks(self, filters: dict[str, Any] | None = ...) -> list[dict[str, Any]]: ...

    def nodes(self, filters: dict[str, Any] | None = ...) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class PortState:
    """One published port of a service."""

    published: int | None
    target: int
    protocol: str = "tcp"
    mode: str = "ingress"

    def __str__(self) -> str:
        host = "" if self.published is None else f"{self.published}->"
        suffix = "" if self.protocol == "tcp" else f"/{self.protocol}"
        mode = "" if self.mode == "ingress" else f" ({self.mode})"
        return f"{host}{self.target}{suffix}{mode}"


@dataclass(frozen=True, slots=True)
class TaskState:
    """One Swarm task (a slot's attempt to run a container) at the time of the snapshot."""

    id: str
    service_id: str
    service_name: str
    slot: int | None
    node_id: str
    node_name: str
    state: str
    desired_state: str
    message: str
    error: str
    exit_code: int | None
    timestamp: datetime
    container_id: str

    @property
    def is_terminal(self) -> bool:
        """The task has stopped for good (completed, failed, shut down, ...)."""
        return self.state in TERMINAL_TASK_STATES

    @property
    def is_failure(self) -> bool:
        """The task ended in error (failed, rejected, orphaned)."""
        return self.state in FAILED_TASK_STATES

    @property
    def is_current(self) -> bool:
        """Swarm still wants this task to run (not a historical attempt being kept for display)."""
        return self.desired_state in ("running", "ready", "accepted", "complete") and not (
            self.desired_state == "complete" and self.state == "complete"
        )

    def age(self, now: datetime) -> timedelta:
        """Time since the task last changed state."""
        return max(now - self.timestamp, timedelta(0))


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One Swarm service, with its replica counts and a health summary derived from its tasks."""

    id: str
    name: str
    short_name: str
    stack: str | None
    mode: ServiceMode
    replicas_running: int
    replicas_desired: int
    jobs_completed: int | None
    jobs_total: int | None
    image: str
    ports: tuple[PortState, ...]
    update_state: str | None
    update_message: str
    health: Health
    labels: Mapping[str, str]
    version: int
    updated_at: datetime
    created_at: datetime

    @property
    def is_job(self) -> bool:
        """A one-shot service (replicated-job or global-job)."""
        return self.mode.endswith("-job")

    @property
    def updating(self) -> bool:
        """Swarm is rolling an update or a rollback out (or has paused one)."""
        return self.update_state in UPDATE_IN_PROGRESS

    @property
    def converged(self) -> bool:
        """Nothing left to do: replicas all running (healthy) or the job done, no update running."""
        if self.updating or self.update_state == "rollback_completed":
            # A finished rollback means the requested update was refused: not the desired state.
            return False
        if self.is_job:
            total = self.jobs_total if self.jobs_total is not None else self.replicas_desired
            return self.health == "complete" and (self.jobs_completed or 0) >= total
        return self.replicas_running == self.replicas_desired and self.health in (
            "healthy",
            "idle",
        )

    @property
    def replicas_text(self) -> str:
        """``running/desired`` as ``docker service ls`` shows it (jobs add the completions)."""
        text = f"{self.replicas_running}/{self.replicas_desired}"
        if self.is_job and self.jobs_total is not None:
            text += f" ({self.jobs_completed or 0}/{self.jobs_total} completed)"
        elif self.is_job:
            text += f" ({self.jobs_completed or 0} completed)"
        return text


@dataclass(frozen=True, slots=True)
class NodeState:
    """One Swarm node."""

    id: str
    hostname: str
    role: str
    availability: str
    state: str
    leader: bool
    engine_version: str = ""
    #: The address the node reaches the others on (Status.Addr).
    address: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Why the node is in its state, when Swarm says (e.g. "heartbeat failure").
    message: str = ""
    #: Running tasks on the node: of the snapshot's stack in a snapshot, of every service in
    #: :func:`read_nodes`.
    tasks_running: int = 0

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    @property
    def ready(self) -> bool:
        """Up and accepting new tasks."""
        return self.state == "ready" and self.availability == "active"

    def matches(self, name: str) -> bool:
        """``name`` is this node's hostname, id, or a unique-looking id prefix (>= 4 chars)."""
        return name in (self.hostname, self.id) or (len(name) >= 4 and self.id.startswith(name))


@dataclass(frozen=True, slots=True)
class SwarmSnapshot:
    """Services, tasks and nodes read together at ``taken_at``."""

    services: tuple[ServiceState, ...]
    tasks: tuple[TaskState, ...]
    nodes: tuple[NodeState, ...]
    taken_at: datetime
    stack: str | None = None
    _tasks_by_service: Mapping[str, tuple[TaskState, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def service(self, name_or_id: str) -> ServiceState | None:
        """The service with this id, full name or short name (None if absent)."""
        for svc in self.services:
            if name_or_id in (svc.id, svc.name, svc.short_name):
                return svc
        return None

    def tasks_of(self, service: ServiceState | str) -> tuple[TaskState, ...]:
        """Tasks of a service (by state or id), newest first within each slot order."""
        sid = service.id if isinstance(service, ServiceState) else service
        return self._tasks_by_service.get(sid, ())

    def current_tasks_of(self, service: ServiceState | str) -> tuple[TaskState, ...]:
        """Only the tasks Swarm still wants running (the history of replaced tasks left out)."""
        return tuple(t for t in self.tasks_of(service) if t.is_current)

    @property
    def converged(self) -> bool:
        """Every service converged."""
        return all(s.converged for s in self.services)

    @property
    def leader(self) -> NodeState | None:
        """The manager node that leads the Raft group, if nodes were read."""
        return next((n for n in self.nodes if n.leader), None)

    def node(self, name: str) -> NodeState | None:
        """The node with this hostname or id (prefix), if nodes were read."""
        return next((n for n in self.nodes if n.matches(name)), None)

    def tasks_on(self, node: NodeState | str) -> tuple[TaskState, ...]:
        """The snapshot's current tasks placed on a node (by state or id)."""
        nid = node.id if isinstance(node, NodeState) else node
        return tuple(t for t in self.tasks if t.node_id == nid and t.is_current)

    @property
    def nodes_down(self) -> tuple[NodeState, ...]:
        """Nodes Swarm cannot reach (their tasks are being rescheduled elsewhere)."""
        return tuple(n for n in self.nodes if n.state != "ready")


EventKind = Literal["service-created", "service-updated", "service-removed", "task-failed"]
