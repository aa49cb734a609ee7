"""The Swarm read model: services, tasks and nodes of a stack as the project's frozen dataclasses.

One query shared by ``deployer status``, the deployer's convergence wait and ``mlops-tui``. It
costs at most three Docker API calls whatever the number of services (services with their
``ServiceStatus`` counts, tasks, nodes), all filtered server-side by the stack label.

Parsing is pure and separate from I/O: :func:`parse_snapshot` turns the raw Engine API JSON
(lists of dicts, as ``docker.APIClient`` returns them) into a :class:`SwarmSnapshot`, so tests feed
it recorded JSON. :func:`read_snapshot` does the three calls and hands their results over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


# ---------------------------------------------------------------------------------------------
# I/O


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


# ---------------------------------------------------------------------------------------------
# Pure parsing


def parse_time(value: str | None) -> datetime:
    """An Engine API RFC 3339 timestamp (nanoseconds allowed) as an aware UTC datetime."""
    if not value:
        return _ZERO_TIME
    text = value.strip()
    # fromisoformat takes at most microseconds: trim the nanosecond digits Go writes.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _ZERO_TIME
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def strip_digest(image: str) -> str:
    """``name:tag@sha256:...`` -> ``name:tag`` (the digest is noise on screen)."""
    return image.split("@", 1)[0]


def short_service_name(name: str, stack: str | None) -> str:
    """The service name without its ``<stack>_`` prefix."""
    if stack and name.startswith(f"{stack}_"):
        return name[len(stack) + 1 :]
    return name


def _mode(spec_mode: Json) -> tuple[ServiceMode, int | None]:
    """The service mode and, for replicated-job, its total completions."""
    if "Global" in spec_mode:
        return "global", None
    if "ReplicatedJob" in spec_mode:
        job = spec_mode["ReplicatedJob"] or {}
        return "replicated-job", int(job.get("TotalCompletions") or 1)
    if "GlobalJob" in spec_mode:
        return "global-job", None
    return "replicated", None


def _ports(raw: Json) -> tuple[PortState, ...]:
    # Endpoint.Ports holds the ports as Swarm assigned them (published port filled in);
    # the spec only what was asked. Prefer the live view.
    endpoint = raw.get("Endpoint") or {}
    ports = (
        endpoint.get("Ports")
        or ((raw.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports")
        or []
    )
    parsed = [
        PortState(
            published=int(p["PublishedPort"]) if p.get("PublishedPort") else None,
            target=int(p.get("TargetPort") or 0),
            protocol=str(p.get("Protocol") or "tcp"),
            mode=str(p.get("PublishMode") or "ingress"),
        )
        for p in ports
    ]
    return tuple(sorted(parsed, key=lambda p: (p.published or 0, p.target, p.protocol)))


def parse_task(
    raw: Json, service_names: Mapping[str, str], node_names: Mapping[str, str]
) -> TaskState:
    """One task from the Engine API JSON; names resolved from the maps (ids when unknown)."""
    status = raw.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    service_id = str(raw.get("ServiceID") or "")
    node_id = str(raw.get("NodeID") or "")
    state = str(status.get("State") or "unknown")
    # A running container reports ExitCode 0: only meaningful once the task has stopped.
    raw_exit = container.get("ExitCode")
    exit_code = int(raw_exit) if raw_exit is not None and state in TERMINAL_TASK_STATES else None
    slot = raw.get("Slot")
    return TaskState(
        id=str(raw.get("ID") or ""),
        service_id=service_id,
        service_name=service_names.get(service_id, service_id[:12]),
        slot=int(slot) if slot else None,
        node_id=node_id,
        node_name=node_names.get(node_id, node_id[:12]),
        state=state,
        desired_state=str(raw.get("DesiredState") or "unknown"),
        message=str(status.get("Message") or ""),
        error=str(status.get("Err") or ""),
        exit_code=exit_code,
        timestamp=parse_time(status.get("Timestamp") or raw.get("UpdatedAt")),
        container_id=str(container.get("ContainerID") or ""),
    )


def parse_node(raw: Json, tasks_running: int = 0) -> NodeState:
    """One node from the Engine API JSON."""
    spec = raw.get("Spec") or {}
    description = raw.get("Description") or {}
    manager = raw.get("ManagerStatus") or {}
    status = raw.get("Status") or {}
    # A manager's Status.Addr can be 0.0.0.0 (it listens everywhere); its advertised address
    # is the one others use.
    address = str(status.get("Addr") or "")
    if address in ("", "0.0.0.0") and manager.get("Addr"):
        address = str(manager["Addr"]).rsplit(":", 1)[0]
    return NodeState(
        id=str(raw.get("ID") or ""),
        hostname=str(description.get("Hostname") or raw.get("ID", "")[:12]),
        role=str(spec.get("Role") or "worker"),
        availability=str(spec.get("Availability") or "active"),
        state=str(status.get("State") or "unknown"),
        leader=bool(manager.get("Leader")),
        engine_version=str((description.get("Engine") or {}).get("EngineVersion") or ""),
        address=address,
        labels=dict(spec.get("Labels") or {}),
        message=str(status.get("Message") or ""),
        tasks_running=tasks_running,
    )


def running_by_node(tasks: Iterable[Json]) -> dict[str, int]:
    """Node id -> number of tasks running there (Swarm still wants them running)."""
    counts: dict[str, int] = {}
    for raw in tasks:
        state = str((raw.get("Status") or {}).get("State") or "")
        if state == "running" and raw.get("DesiredState") == "running" and raw.get("NodeID"):
            node_id = str(raw["NodeID"])
            counts[node_id] = counts.get(node_id, 0) + 1
    return counts


def parse_nodes(nodes: Sequence[Json], tasks: Sequence[Json] = ()) -> tuple[NodeState, ...]:
    """Nodes sorted managers first, then by hostname, with their running-task counts."""
    counts = running_by_node(tasks)
    parsed = (parse_node(n, counts.get(str(n.get("ID") or ""), 0)) for n in nodes)
    return tuple(sorted(parsed, key=lambda n: (not n.is_manager, n.hostname)))


def read_nodes(api: SwarmApi) -> tuple[NodeState, ...]:
    """Every node of the swarm with the number of tasks (of any service) running on it: two
    API calls whatever the size of the cluster."""
    return parse_nodes(api.nodes(), api.tasks(filters={"desired-state": "running"}))


def derive_health(
    mode: ServiceMode,
    running: int,
    desired: int,
    tasks: Sequence[TaskState],
    jobs_completed: int | None = None,
    jobs_total: int | None = None,
) -> Health:
    """A one-word health of a service from its tasks.

    Swarm counts a task with a healthcheck as running only once it is healthy, so the counts
    carry most of it; the tasks tell *why* a service is short of replicas:

    * ``failing``: its tasks exit with an error (a crash loop);
    * ``unhealthy``: its tasks were stopped without an error — for a long-running service that
      is the engine killing a container whose healthcheck failed (or one that quit by itself);
    * ``degraded``: a task cannot be scheduled (e.g. no node with the port free);
    * ``starting``: tasks on their way up and nothing went wrong yet.
    """
    current = [t for t in tasks if t.is_current]
    # A slot removed by a scale-down keeps its last tasks in the history: ignore them.
    relevant = [t for t in tasks if mode != "replicated" or t.slot is None or t.slot <= desired]
    latest_by_slot: dict[tuple[int | None, str], TaskState] = {}
    for task in relevant:
        key = (task.slot, task.node_id if task.slot is None else "")
        if key not in latest_by_slot or task.timestamp > latest_by_slot[key].timestamp:
            latest_by_slot[key] = task
    if mode.endswith("-job"):
        if any(t.is_failure for t in latest_by_slot.values()):
            return "failed"
        total = jobs_total if jobs_total is not None else desired
        if running == 0 and (jobs_completed or 0) >= max(total, 1):
            return "complete"
        return "starting"
    if desired == 0 and running == 0:
        return "idle"
    if running >= desired:
        return "healthy"
    failures = [t for t in relevant if t.is_failure]
    if any("unhealthy" in (t.error + t.message) for t in failures):
        return "unhealthy"
    if failures:
        return "failing"
    # A long-running task never completes unless something stopped it.
    if any(t.state == "complete" for t in relevant):
        return "unhealthy"
    if any(t.error for t in current):
        return "degraded"
    if any(t.state in _STARTING_STATES for t in current):
        return "starting"
    return "degraded"


_STARTING_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)


def _sort_tasks(tasks: Iterable[TaskState]) -> tuple[TaskState, ...]:
    # Current tasks first, then by slot, newest attempt first: the order a person reads them in.
    return tuple(
        sorted(
            tasks,
            key=lambda t: (
                not t.is_current,
                t.slot if t.slot is not None else 0,
                t.node_name,
                -t.timestamp.timestamp(),
            ),
        )
    )


def parse_service(raw: Json, tasks: Sequence[TaskState], stack: str | None) -> ServiceState:
    """One service from the Engine API JSON (``status=True`` listing) and its parsed tasks."""
    spec = raw.get("Spec") or {}
    labels = dict(spec.get("Labels") or {})
    own_stack = labels.get(STACK_LABEL) or stack
    name = str(spec.get("Name") or "")
    mode, jobs_total = _mode(spec.get("Mode") or {})
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    status = raw.get("ServiceStatus")
    current = [t for t in tasks if t.is_current]
    if status is not None:
        # Swarm's count includes tasks it has already given up on but not heard stop: on a
        # node that went down, or being drained (desired shutdown, still running). Counting
        # those showed "3/2" while a node was down and let a wait pass before a drained task
        # had moved: only tasks still wanted running count.
        running = min(int(status.get("RunningTasks") or 0),
                      sum(1 for t in current if t.state == "running"
                          and t.desired_state == "running"))
        desired = int(status.get("DesiredTasks") or 0)
        completed = status.get("CompletedTasks")
    else:
        # Engines before API 1.41 have no ServiceStatus: count from the tasks instead.
        running = sum(1 for t in current if t.state == "running")
        if mode == "replicated":
            desired = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)
        else:
            desired = sum(1 for t in current if t.desired_state == "running")
        completed = sum(1 for t in tasks if t.state == "complete")
    if mode == "replicated-job" and jobs_total is not None:
        # The engine reports the current iteration's concurrency as DesiredTasks; what the user
        # asked for is the number of completions.
        desired = jobs_total
    jobs_completed = int(completed or 0) if mode.endswith("-job") else None
    update = raw.get("UpdateStatus") or {}
    return ServiceState(
        id=str(raw.get("ID") or ""),
        name=name,
        short_name=short_service_name(name, own_stack),
        stack=own_stack,
        mode=mode,
        replicas_running=running,
        replicas_desired=desired,
        jobs_completed=jobs_completed,
        jobs_total=jobs_total,
        image=strip_digest(str(container_spec.get("Image") or "")),
        ports=_ports(raw),
        update_state=str(update["State"]) if update.get("State") else None,
        update_message=str(update.get("Message") or ""),
        health=derive_health(mode, running, desired, tasks, jobs_completed, jobs_total),
        labels=labels,
        version=int((raw.get("Version") or {}).get("Index") or 0),
        updated_at=parse_time(raw.get("UpdatedAt")),
        created_at=parse_time(raw.get("CreatedAt")),
    )


def parse_snapshot(
    services: Sequence[Json],
    tasks: Sequence[Json],
    nodes: Sequence[Json] = (),
    *,
    stack: str | None = None,
    taken_at: datetime | None = None,
) -> SwarmSnapshot:
    """Build a snapshot from the raw JSON lists of the services, tasks and nodes endpoints."""
    counts = running_by_node(tasks)
    node_states = tuple(sorted((parse_node(n, counts.get(str(n.get("ID") or ""), 0))
                                for n in nodes), key=lambda n: n.hostname))
    node_names = {n.id: n.hostname for n in node_states}
    service_names = {
        str(s.get("ID")): short_service_name(
            str((s.get("Spec") or {}).get("Name") or ""),
            ((s.get("Spec") or {}).get("Labels") or {}).get(STACK_LABEL) or stack,
        )
        for s in services
    }
    by_service: dict[str, list[TaskState]] = {}
    for raw in tasks:
        task = parse_task(raw, service_names, node_names)
        if task.service_id in service_names:
            by_service.setdefault(task.service_id, []).append(task)
    sorted_tasks = {sid: _sort_tasks(ts) for sid, ts in by_service.items()}
    service_states = tuple(
        sorted(
            (parse_service(s, sorted_tasks.get(str(s.get("ID")), ()), stack) for s in services),
            key=lambda s: s.name,
        )
    )
    all_tasks = tuple(t for s in service_states for t in sorted_tasks.get(s.id, ()))
    return SwarmSnapshot(
        services=service_states,
        tasks=all_tasks,
        nodes=node_states,
        taken_at=taken_at or datetime.now(UTC),
        stack=stack,
        _tasks_by_service=sorted_tasks,
    )


# ---------------------------------------------------------------------------------------------
# Changes between two snapshots (the dashboard's events feed; costs no API call)

EventKind = Literal["service-created", "service-updated", "service-removed", "task-failed"]


@dataclass(frozen=True, slots=True)
class SwarmEvent:
    """Something that changed between two snapshots."""

    kind: EventKind
    service: str
    detail: str
    at: datetime


def diff_snapshots(old: SwarmSnapshot | None, new: SwarmSnapshot) -> list[SwarmEvent]:
    """What changed from ``old`` to ``new``: services created, updated, removed; tasks failed.

    With no ``old`` (first refresh), nothing is reported as new except task failures that are
    not older than the previous refresh would have been — i.e. nothing at all.
    """
    if old is None:
        return []
    events: list[SwarmEvent] = []
    before = {s.id: s for s in old.services}
    after = {s.id: s for s in new.services}
    for sid, svc in after.items():
        prev = before.get(sid)
        if prev is None:
            events.append(SwarmEvent("service-created", svc.short_name, svc.image, svc.created_at))
        elif svc.version != prev.version:
            detail = svc.image if svc.image != prev.image else "spec updated"
            if svc.update_state:
                detail += f" ({svc.update_state})"
            events.append(SwarmEvent("service-updated", svc.short_name, detail, svc.updated_at))
    for sid, svc in before.items():
        if sid not in after:
            events.append(SwarmEvent("service-removed", svc.short_name, "", new.taken_at))
    old_failed = {t.id for t in old.tasks if t.is_failure}
    for task in new.tasks:
        if task.is_failure and task.id not in old_failed:
            reason = task.error or task.message
            if task.exit_code is not None:
                reason += f" (exit {task.exit_code})"
            slot = f".{task.slot}" if task.slot is not None else f"@{task.node_name}"
            events.append(
                SwarmEvent("task-failed", f"{task.service_name}{slot}", reason, task.timestamp)
            )
    return sorted(events, key=lambda e: e.at)
