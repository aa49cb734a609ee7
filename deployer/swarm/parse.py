"""Pure parsing of the Engine API's JSON (as ``docker.APIClient`` returns it) into the read
model: tests feed it recorded JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from deployer.swarm.model import (
    _ZERO_TIME,
    STACK_LABEL,
    TERMINAL_TASK_STATES,
    Health,
    Json,
    NodeState,
    PortState,
    ServiceMode,
    ServiceState,
    SwarmSnapshot,
    TaskState,
)


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
