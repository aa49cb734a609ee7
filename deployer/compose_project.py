"""A running Compose project on one engine: its read model and its actions.

The read model is one Engine API call (the project's containers, filtered server-side by the
``com.docker.compose.project`` label) turned into the Swarm read model's dataclasses
(``deployer.swarm.SwarmSnapshot``), so everything that shows a Swarm stack shows a Compose
project too: a Compose service is a "service", each of its containers a "task", the engine the
one "node". Parsing is pure (:func:`parse_compose_snapshot`, recorded JSON in, snapshot out).

The actions (restart, scale, remove, down, logs) run the compose CLI through the connector, as
argv, against the project's own files: Compose labels every container with the files, folder
and env file the project was started from, so an action needs nothing but the project name.
Like the Swarm actions, each takes the stack's deploy lock and writes the audit log
(``deployer.actions.base``). The argv is planned by pure functions (facts in, argv out).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from deployer.actions.base import ActionContext, locked, record
from deployer.compose import ComposeCli
from deployer.errors import ComposeError, ConfigError
from deployer.swarm import (
    Health,
    NodeState,
    PortState,
    ServiceMode,
    ServiceState,
    SwarmSnapshot,
    TaskState,
)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
ENV_FILE_LABEL = "com.docker.compose.project.environment_file"
#: One-shot services of the stack (they exit 0 when done): shown as jobs, as in Swarm.
DEFAULT_JOBS = frozenset({"bucket-init"})
NODE_ID = "local"

_EXITED = re.compile(r"Exited \((-?\d+)\)")

Json = Mapping[str, Any]


class ContainersApi(Protocol):
    """The ``docker.APIClient`` methods the read model uses."""

    def containers(self, all: bool = ..., filters: dict[str, Any] | None = ...
                   ) -> list[dict[str, Any]]: ...


def project_filters(project: str) -> dict[str, Any]:
    """The server-side filter selecting a project's containers (``docker compose run`` one-off
    containers are left out: they are no part of the service)."""
    return {"label": [f"{PROJECT_LABEL}={project}", f"{ONEOFF_LABEL}=False"]}


def read_compose_snapshot(api: ContainersApi, project: str, *,
                          jobs: Iterable[str] = DEFAULT_JOBS,
                          node_name: str = "local") -> SwarmSnapshot:
    """The project's services from one API call (stopped containers included)."""
    containers = api.containers(all=True, filters=project_filters(project))
    return parse_compose_snapshot(containers, project, jobs=jobs, node_name=node_name)


# ---------------------------------------------------------------------------------------------
# Pure parsing


@dataclass(frozen=True, slots=True)
class _Container:
    id: str
    service: str
    number: int | None
    state: str  # created | running | restarting | exited | paused | dead | removing
    status: str  # "Up 3 minutes (healthy)", "Exited (1) 2 seconds ago"
    image: str
    created: datetime
    labels: Mapping[str, str]
    ports: tuple[PortState, ...]

    @property
    def health(self) -> str | None:
        """healthy | unhealthy | starting, or None without a healthcheck."""
        if "(healthy)" in self.status:
            return "healthy"
        if "(unhealthy)" in self.status:
            return "unhealthy"
        if "(health: starting)" in self.status:
            return "starting"
        return None

    @property
    def exit_code(self) -> int | None:
        match = _EXITED.search(self.status)
        return int(match.group(1)) if match and self.state == "exited" else None

    @property
    def serving(self) -> bool:
        """Counts as a running replica: running, and healthy if it has a healthcheck (as a
        Swarm task counts as running only once healthy)."""
        return self.state == "running" and self.health in (None, "healthy")


def _container(raw: Json) -> _Container:
    labels = raw.get("Labels") or {}
    number = labels.get(NUMBER_LABEL)
    ports = tuple(sorted(
        {PortState(published=int(p["PublicPort"]), target=int(p.get("PrivatePort") or 0),
                   protocol=str(p.get("Type") or "tcp"), mode="host")
         for p in raw.get("Ports") or [] if p.get("PublicPort")},
        key=lambda p: (p.published or 0, p.target, p.protocol),
    ))
    return _Container(
        id=str(raw.get("Id") or ""),
        service=str(labels.get(SERVICE_LABEL) or ""),
        number=int(number) if number and str(number).isdigit() else None,
        state=str(raw.get("State") or "unknown"),
        status=str(raw.get("Status") or ""),
        image=str(raw.get("Image") or ""),
        created=datetime.fromtimestamp(int(raw.get("Created") or 0), UTC),
        labels=dict(labels),
        ports=ports,
    )


def _task_state(c: _Container, job: bool) -> tuple[str, str]:
    """(state, desired state) in Swarm's words, for the screens that show tasks."""
    if c.state == "exited":
        state = "complete" if c.exit_code == 0 else "failed"
    elif c.state == "running":
        state = "starting" if c.health == "starting" else "running"
    elif c.state in ("created", "restarting"):
        state = "starting" if c.state == "created" else "failed"
    else:
        state = c.state
    return state, ("complete" if job else "running")


def compose_health(containers: Sequence[_Container], job: bool) -> Health:
    """One word for a service from its containers (the same words as a Swarm service)."""
    if job:
        if any(c.exit_code not in (None, 0) for c in containers):
            return "failed"
        if containers and all(c.exit_code == 0 for c in containers):
            return "complete"
        return "starting"
    if not containers:
        return "idle"
    if all(c.serving for c in containers):
        return "healthy"
    if any(c.health == "unhealthy" for c in containers):
        return "unhealthy"
    if any(c.state in ("restarting", "dead") or c.exit_code not in (None, 0)
           for c in containers):
        return "failing"
    if any(c.health == "starting" or c.state == "created" for c in containers):
        return "starting"
    return "degraded"  # stopped by hand (exit 0, paused): not what the project wants


def parse_compose_snapshot(
    containers: Iterable[Json],
    project: str,
    *,
    jobs: Iterable[str] = DEFAULT_JOBS,
    node_name: str = "local",
    taken_at: datetime | None = None,
) -> SwarmSnapshot:
    """The Engine API's container list of ``project`` as a ``SwarmSnapshot``.

    A service's desired count is its number of containers (what ``up --scale`` made); running
    counts the serving ones. Services are ordered by name, tasks by container number.
    """
    job_names = frozenset(jobs)
    by_service: dict[str, list[_Container]] = {}
    for raw in containers:
        c = _container(raw)
        if c.service and c.labels.get(PROJECT_LABEL, project) == project:
            by_service.setdefault(c.service, []).append(c)
    services: list[ServiceState] = []
    tasks: list[TaskState] = []
    tasks_by: dict[str, tuple[TaskState, ...]] = {}
    for name in sorted(by_service):
        group = sorted(by_service[name], key=lambda c: (c.number or 0, c.id))
        job = name in job_names
        full = f"{project}_{name}"
        mode: ServiceMode = "replicated-job" if job else "replicated"
        completed = sum(1 for c in group if c.exit_code == 0) if job else None
        running = sum(1 for c in group if (c.state == "running" if job else c.serving))
        own: list[TaskState] = []
        for c in group:
            state, desired = _task_state(c, job)
            own.append(TaskState(
                id=c.id, service_id=full, service_name=full, slot=c.number, node_id=NODE_ID,
                node_name=node_name, state=state, desired_state=desired,
                message=c.status, error="" if state != "failed" else c.status,
                exit_code=c.exit_code, timestamp=c.created, container_id=c.id,
            ))
        first = group[0]
        services.append(ServiceState(
            id=full, name=full, short_name=name, stack=project, mode=mode,
            replicas_running=running,
            replicas_desired=0 if job else len(group),
            jobs_completed=completed, jobs_total=len(group) if job else None,
            image=first.image,
            ports=tuple(sorted({p for c in group for p in c.ports},
                               key=lambda p: (p.published or 0, p.target, p.protocol))),
            update_state=None, update_message="",
            health=compose_health(group, job),
            labels=first.labels, version=0,
            updated_at=max(c.created for c in group),
            created_at=min(c.created for c in group),
        ))
        tasks.extend(own)
        tasks_by[full] = tuple(own)
    node = NodeState(id=NODE_ID, hostname=node_name, role="engine", availability="active",
                     state="ready", leader=False)
    return SwarmSnapshot(
        services=tuple(services), tasks=tuple(tasks), nodes=(node,),
        taken_at=taken_at or datetime.now(UTC), stack=project, _tasks_by_service=tasks_by,
    )


# ---------------------------------------------------------------------------------------------
# The project's files, and the argv of each action (pure)


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    """What Compose recorded about how the project was started (from its containers' labels)."""

    project: str
    config_files: tuple[str, ...]
    working_dir: str | None = None
    env_file: str | None = None


def project_files(containers: Iterable[Json], project: str) -> ProjectFiles:
    """The files ``project`` was started from; ``ComposeError`` when no container says."""
    for raw in containers:
        labels = raw.get("Labels") or {}
        files = labels.get(CONFIG_FILES_LABEL)
        if labels.get(PROJECT_LABEL) == project and files:
            return ProjectFiles(
                project=project,
                config_files=tuple(f for f in str(files).split(",") if f),
                working_dir=labels.get(WORKING_DIR_LABEL) or None,
                env_file=labels.get(ENV_FILE_LABEL) or None,
            )
    raise ComposeError(
        f"no container of Compose project {project!r} on this engine says which files started "
        "it",
        fix=f"start it with `deployer compose up` (stack.name {project}), or check the name",
    )


def _base(cli: ComposeCli, files: ProjectFiles) -> list[str]:
    argv = [*cli.argv]
    for path in files.config_files:
        argv += ["--file", path]
    argv += ["--project-name", files.project]
    if files.working_dir:
        argv += ["--project-directory", files.working_dir]
    if files.env_file:
        argv += ["--env-file", files.env_file]
    return argv


def restart_argv(cli: ComposeCli, files: ProjectFiles, services: Sequence[str]) -> list[str]:
    """Restart the services' containers (the same containers: no recreate)."""
    return [*_base(cli, files), "restart", *services]


def scale_argv(cli: ComposeCli, files: ProjectFiles, replicas: Mapping[str, int]) -> list[str]:
    """Set each service's container count; the others stay as they are (``--no-recreate``)."""
    argv = [*_base(cli, files), "up", "--detach", "--no-recreate", "--no-deps"]
    for name, count in sorted(replicas.items()):
        argv += ["--scale", f"{name}={count}"]
    return [*argv, *sorted(replicas)]


def remove_argv(cli: ComposeCli, files: ProjectFiles, services: Sequence[str]) -> list[str]:
    """Stop and remove the services' containers (their volumes stay)."""
    return [*_base(cli, files), "rm", "--stop", "--force", *services]


def down_argv(cli: ComposeCli, files: ProjectFiles, *, volumes: bool = False) -> list[str]:
    """The whole project: containers and network (and named volumes with ``volumes``)."""
    return [*_base(cli, files), "down", "--remove-orphans", *(["--volumes"] if volumes else [])]


def logs_argv(cli: ComposeCli, files: ProjectFiles, services: Sequence[str], *,
              follow: bool, tail: int | None) -> list[str]:
    """Logs with timestamps and without colours or the ``name |`` prefix columns aligned."""
    argv = [*_base(cli, files), "logs", "--timestamps", "--no-color"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    return [*argv, *services]


_LOG_PREFIX = re.compile(r"^(?P<source>[A-Za-z0-9][A-Za-z0-9_.-]*)\s+\| ?(?P<rest>.*)$")


def split_log_line(line: str) -> tuple[str, str]:
    """``"web-1  | 2026-... text"`` -> ``("web-1", "2026-... text")`` (no prefix: ``""``)."""
    match = _LOG_PREFIX.match(line.rstrip("\r\n"))
    if match is None:
        return "", line.rstrip("\r\n")
    return match.group("source"), match.group("rest")


# ---------------------------------------------------------------------------------------------
# Actions (connector + lock + audit)


class ComposeProject:
    """Actions on one Compose project through an action context's connector."""

    def __init__(self, ctx: ActionContext, cli: ComposeCli) -> None:
        self.ctx = ctx
        self.cli = cli

    def files(self) -> ProjectFiles:
        api = self.ctx.conn.docker_client().api
        return project_files(api.containers(all=True, filters=project_filters(self.ctx.stack)),
                             self.ctx.stack)

    def snapshot(self) -> SwarmSnapshot:
        return read_compose_snapshot(self.ctx.conn.docker_client().api, self.ctx.stack)

    def _known(self, services: Iterable[str]) -> list[str]:
        names = list(services)
        if not names:
            raise ConfigError("name at least one service")
        known = {s.short_name for s in self.snapshot().services}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"Compose project {self.ctx.stack} has no service {', '.join(unknown)}",
                fix=f"name some of: {', '.join(sorted(known)) or '(none running)'}",
            )
        return names

    def _run(self, action: str, argv: list[str], **details: Any) -> None:
        with locked(self.ctx) as state:
            result = self.ctx.conn.run(argv, timeout=self.ctx.timeout, check=False)
            status = "changed" if result.ok else "failed"
            detail = "" if result.ok else (result.stderr.strip().splitlines() or [""])[-1]
            self.ctx.events.step(self.ctx.host, status, f"compose-{action}", self.ctx.stack,
                                 detail, argv)
            record(self.ctx, state, f"compose-{action}", ok=result.ok, **details)
        if not result.ok:
            raise ComposeError(
                f"`compose {action}` of project {self.ctx.stack} failed (exit "
                f"{result.returncode}): {detail or 'no error output'}",
            )

    def restart(self, services: Sequence[str]) -> None:
        names = self._known(services)
        self._run("restart", restart_argv(self.cli, self.files(), names), services=names)

    def scale(self, replicas: Mapping[str, int]) -> None:
        bad = {n: r for n, r in replicas.items() if r < 0}
        if bad:
            raise ConfigError(f"cannot scale {', '.join(bad)} below 0 containers")
        self._known(replicas)
        self._run("scale", scale_argv(self.cli, self.files(), replicas), replicas=dict(replicas))

    def remove(self, services: Sequence[str]) -> None:
        names = self._known(services)
        self._run("remove", remove_argv(self.cli, self.files(), names), services=names)

    def down(self, *, volumes: bool = False) -> None:
        self._run("down", down_argv(self.cli, self.files(), volumes=volumes), volumes=volumes)

    def logs(self, services: Sequence[str], on_line: Callable[[str, str], object], *,
             follow: bool = True, tail: int | None = 100,
             cancel: threading.Event | None = None) -> int:
        """Stream the services' log lines to ``on_line(source, text)`` until they end or
        ``cancel`` is set; returns the CLI's exit code. Reading takes no lock."""
        argv = logs_argv(self.cli, self.files(), services, follow=follow, tail=tail)

        def line(raw: str) -> None:
            source, text = split_log_line(raw)
            on_line(source, text)

        result = self.ctx.conn.run(argv, check=False, on_line=line, cancel=cancel)
        return result.returncode
