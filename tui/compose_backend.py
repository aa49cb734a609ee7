"""The dashboard's backend for a Compose project on the local engine (``mlops-tui --compose``).

It implements ``tui.backend.Backend`` over ``deployer.compose_project``: snapshots are the Swarm
read model's dataclasses (a Compose service shows as a service, its containers as tasks), so the
screens are the same. Every change is a compose CLI action through the connector that takes the
stack's deploy lock and writes its audit log, as the Swarm actions do. Compose keeps no previous
spec, so rollback is refused with the way to do it; deploy points at ``deployer compose up``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import queue
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from deployer.actions.base import ActionContext
from deployer.compose import ComposeCli, choose, probe
from deployer.compose_project import ComposeProject, read_compose_snapshot
from deployer.connectors import Connector, connect
from deployer.errors import ConfigError, MlopsError
from deployer.output import Reporter
from deployer.swarm import NodeState, ServiceState, SwarmSnapshot
from tui.connection import Connection
from tui.deploy import DeployEvent, DeployRequest, DeployResult

if TYPE_CHECKING:
    from deployer.actions.models import ModelsOverview
from tui.logs import LogLine

log = logging.getLogger(__name__)

#: ``compose logs --timestamps`` puts the container's RFC 3339 time first.
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d)) ?")

#: Seconds a compose CLI action may take (a restart waits for each container's stop grace).
ACTION_TIMEOUT = 300.0


class _Named(Protocol):
    """A service to read logs of: a ``ServiceState`` (or anything with its full ``name``)."""

    @property
    def name(self) -> str: ...


class ComposeBackend:
    """A Compose project ``project`` on the engine of ``connect()`` (the local one by default).

    Actions run one at a time (quick key presses queue instead of refusing each other on the
    stack lock); a lost connection is reopened on the next call.
    """

    def __init__(
        self,
        project: str,
        *,
        connect: Callable[[], Connector] = lambda: connect(None),
        cli: ComposeCli | None = None,
    ) -> None:
        self.project = project
        self._cli = cli
        self._link = Connection(connect, self.host_label)
        self._action_lock = threading.Lock()

    @property
    def host_label(self) -> str:
        return f"compose:{self.project}@local"


    @property
    def connector(self) -> Connector:
        """The open connector, connecting first if needed."""
        return self._link.connector

    @property
    def cli(self) -> ComposeCli:
        """The compose CLI (found on first use; ``ComposeError`` says what to install)."""
        if self._cli is None:
            self._cli = choose(probe())
        return self._cli

    def _project(self) -> ComposeProject:
        # The dashboard shows convergence live: the action returns once the CLI has.
        ctx = ActionContext(self.connector, self.project, Reporter(stream=io.StringIO(),
                                                                   color=False),
                            timeout=ACTION_TIMEOUT)
        return ComposeProject(ctx, self.cli)

    def _short(self, service: ServiceState | str) -> str:
        if isinstance(service, ServiceState):
            if service.stack not in (None, self.project):
                raise ConfigError(f"{service.name} is not part of Compose project "
                                  f"{self.project}")
            return service.short_name
        return service.removeprefix(f"{self.project}_")

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        # One project per dashboard: the project name is the stack name on screen. Asked for
        # "every service" (the `a` toggle), it is still this project's, labelled as asked.
        snap: SwarmSnapshot = self._link.call(
            lambda: read_compose_snapshot(self.connector.docker_client().api, self.project))
        return snap if stack is not None else dataclasses.replace(snap, stack=None)

    def _act(self, fn: Callable[[ComposeProject], object]) -> None:
        with self._action_lock:
            self._link.call(lambda: fn(self._project()))

    def scale(self, service: ServiceState | str, replicas: int) -> None:
        name = self._short(service)
        self._act(lambda p: p.scale({name: replicas}))

    def restart(self, service: ServiceState | str) -> None:
        name = self._short(service)
        self._act(lambda p: p.restart([name]))

    def rollback(self, service: ServiceState | str) -> None:
        raise ConfigError(
            f"Compose keeps no previous spec of {self._short(service)}: there is nothing to roll "
            "back to",
            fix="run `deployer compose up` with the previous values (or image tag) instead",
        )

    def remove(self, service: ServiceState | str) -> None:
        name = self._short(service)
        self._act(lambda p: p.remove([name]))

    def models(self, stack: str | None) -> ModelsOverview:
        raise ConfigError("the Models view reads a Swarm stack's published ports",
                          fix="use `deployer models --endpoint ...` for a Compose project")

    def promote(self, stack: str | None, model: str, version: str) -> None:
        self.models(stack)

    def set_availability(self, node: NodeState, availability: str, stack: str | None) -> None:
        raise ConfigError("a Compose project runs on one engine: it has no Swarm nodes to "
                          f"{'drain' if availability == 'drain' else 'activate'}",
                          fix="use the Swarm dashboard (without --compose) on a cluster")

    def open_logs(
        self, services: Sequence[_Named], *, tail: int | None, follow: bool = True
    ) -> ComposeLogStream:
        names = {self._short(s.name): s.name for s in services}
        project = self._link.call(self._project)
        return ComposeLogStream(project, names, tail=tail, follow=follow).start()

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        return DeployResult(
            "failed", request.stack or self.project, self.host_label, request.check,
            "a Compose project is deployed with `deployer compose up` (this dashboard does "
            "not deploy Compose projects)",
        )

    def close(self) -> None:
        self._link.forget()


class ComposeLogStream:
    """``compose logs`` of some services, read line by line by one background thread."""

    def __init__(self, project: ComposeProject, names: dict[str, str], *, tail: int | None,
                 follow: bool) -> None:
        #: short compose service name -> the full name the screens know the service by
        self._names = names
        self._project = project
        self._tail = tail
        self._follow = follow
        self._queue: queue.Queue[LogLine] = queue.Queue()
        self._cancel = threading.Event()
        self._errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="compose-logs", daemon=True)

    def start(self) -> ComposeLogStream:
        self._thread.start()
        return self

    def _on_line(self, source: str, text: str) -> None:
        # Compose names a container's lines "<service>-<number>": shown as "<service>.<number>"
        # like a Swarm task's.
        service, _, number = source.rpartition("-")
        if not number.isdigit():
            service, number = source, ""
        match = _TIMESTAMP.match(text)
        timestamp = match.group(1) if match else ""
        self._queue.put(LogLine(
            service=service, text=text[match.end():] if match else text, timestamp=timestamp,
            source=f"{service}.{number}" if number else service,
        ))

    def _run(self) -> None:
        try:
            code = self._project.logs(list(self._names), self._on_line, follow=self._follow,
                                      tail=self._tail, cancel=self._cancel)
            if code not in (0, -2) and not self._cancel.is_set():
                self._errors.append(f"compose logs exited {code}")
        except MlopsError as exc:
            self._errors.append(exc.render())
        except Exception as exc:  # noqa: BLE001 - shown to the user instead of a dead thread
            log.debug("compose logs failed", exc_info=True)
            self._errors.append(f"compose logs failed: {exc}")

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        out: list[LogLine] = []
        try:
            out.append(self._queue.get(timeout=timeout))
        except queue.Empty:
            return out
        while len(out) < max_lines:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive() and self._queue.empty()

    @property
    def errors(self) -> list[str]:
        return list(self._errors)

    def close(self) -> None:
        self._cancel.set()
        self._thread.join(timeout=10)
