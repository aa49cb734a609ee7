"""The dashboard's only door to Docker: reads snapshots, runs actions, streams logs.

Screens and widgets talk to a :class:`Backend` and never import ``docker`` or ``paramiko``.
Every method blocks, so callers run them in thread workers. Failures arrive as the project's
errors (``ConnectError`` when the engine or the SSH connection is gone, ``DockerError`` when the
engine refuses), mapped by ``deployer.engine.client.docker_errors``.

Backends:

* :class:`DockerBackend`: one deployer connector from a factory (the local engine, or a manager
  over SSH); reads over its API, changes through ``deployer.actions`` (lock, audit); reconnects
  by itself after a lost connection.
* ``tui.replay.ReplayBackend``: a recorded snapshot (Engine API JSON), for offline viewing and
  tests.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from deployer.actions import models, nodes, services
from deployer.actions.base import ActionContext
from deployer.actions.logs import LogStream as ActionLogStream
from deployer.actions.models import Endpoints, ModelsOverview
from deployer.connectors import Connector, connect
from deployer.errors import ConfigError
from deployer.inventory import Host
from deployer.logs import LogLine, LogOptions
from deployer.output import Reporter
from deployer.swarm import NodeState, ServiceState, SwarmSnapshot, read_snapshot
from tui.connection import Connection
from tui.deploy import DashboardReporter, DeployEvent, DeployRequest, DeployResult

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)


class LogStream(Protocol):
    """Lines of one or more services, read by background threads until closed
    (``deployer.actions.logs.LogStream``, the reader ``deployer logs`` uses)."""

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        """Up to ``max_lines`` lines, waiting at most ``timeout`` seconds for the first."""
        ...

    @property
    def finished(self) -> bool:
        """Every reader has ended (follow off and all lines read, or errors)."""
        ...

    @property
    def errors(self) -> list[str]:
        """Why readers ended early (for display)."""
        ...

    def close(self) -> None:
        """Stop every reader (the connection stays open)."""
        ...


class Backend(Protocol):
    """What the dashboard needs from a Swarm manager."""

    @property
    def host_label(self) -> str:
        """Where the dashboard is connected (shown in the status bar)."""
        ...

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        """Services, tasks and nodes of ``stack`` (every service when None)."""
        ...

    def scale(self, service: ServiceState, replicas: int) -> None:
        """Set a replicated service's replica count."""
        ...

    def restart(self, service: ServiceState) -> None:
        """Replace every task of a service (a forced update)."""
        ...

    def rollback(self, service: ServiceState) -> None:
        """Return a service to its previous spec."""
        ...

    def remove(self, service: ServiceState) -> None:
        """Remove a service."""
        ...

    def set_availability(self, node: NodeState, availability: str, stack: str | None) -> None:
        """Drain or activate a Swarm node (under ``stack``'s lock, in its audit log)."""
        ...

    def models(self, stack: str | None) -> ModelsOverview:
        """What the model services serve and the registry's versions of their models."""
        ...

    def promote(self, stack: str | None, model: str, version: str) -> None:
        """Point ``model@champion`` at ``version`` (under ``stack``'s lock, audited)."""
        ...

    def open_logs(
        self, services: Sequence[ServiceState], *, tail: int | None, follow: bool = True
    ) -> LogStream:
        """Start reading the logs of ``services`` (interleaved as they arrive)."""
        ...

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        """Run the deployer's push of ``request`` on this host, reporting through ``emit``.

        Deployer errors end as a ``failed`` result with the reason (not as an exception).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# ---------------------------------------------------------------------------------------------
# Docker


class DockerBackend:
    """A backend over one connector made by ``connect`` (made again after a lost connection).

    Reads go to the engine's API over the connector; every change goes through the deployer's
    actions (``deployer.actions``): the stack's deploy lock, the audit log, the same commands as
    the CLI. The dashboard does not wait for convergence inside an action (it shows it live), so
    the lock is held only for the change itself; this backend's own actions run one at a time so
    quick key presses queue instead of refusing each other.
    """

    def __init__(
        self,
        connect: Callable[[], Connector],
        host_label: str,
        *,
        host: Host | None = None,
        endpoints: Endpoints | None = None,
    ) -> None:
        #: Where MLflow / the model APIs answer when the stack does not publish them.
        self._endpoints = dict(endpoints or {})
        self._known_runs: dict[str, dict[str, float]] = {}
        #: The inventory host (how the deployer reaches it); None: the local engine.
        self._host = host or Host("local", None)
        self._host_label = host_label
        self._link = Connection(connect, host_label)
        self._action_lock = threading.Lock()

    @property
    def host_label(self) -> str:
        return self._host_label


    @property
    def connector(self) -> Connector:
        """The open connector, connecting first if needed."""
        return self._link.connector

    @property
    def api(self) -> docker.APIClient:
        """The engine's low-level client (tests wrap it to count calls)."""
        return self.connector.docker_client().api

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        return self._link.call(lambda: read_snapshot(self.api, stack))  # type: ignore[no-any-return]

    def _act(self, service: ServiceState, action: Callable[[ActionContext], object]) -> None:
        if not service.stack:
            raise ConfigError(
                f"{service.name} belongs to no stack: the dashboard changes stack services only "
                "(each change takes its stack's lock and goes in its audit log)",
                fix="use `docker service` for it, or deploy it as part of a stack",
            )
        self._run_action(service.stack, action)

    def _run_action(self, stack: str, action: Callable[[ActionContext], object]) -> None:
        events = Reporter(stream=io.StringIO(), color=False)
        with self._action_lock:
            self._link.call(
                lambda: action(ActionContext(self.connector, stack, events, wait=False)))

    def scale(self, service: ServiceState, replicas: int) -> None:
        if replicas < 0:
            raise ConfigError(f"cannot scale to {replicas}: replicas must be 0 or more")
        self._act(service, lambda ctx: services.scale(ctx, {service.short_name: replicas}))

    def restart(self, service: ServiceState) -> None:
        self._act(service, lambda ctx: services.restart(ctx, [service.short_name]))

    def rollback(self, service: ServiceState) -> None:
        self._act(service, lambda ctx: services.rollback_service(ctx, service.short_name))

    def remove(self, service: ServiceState) -> None:
        self._act(service, lambda ctx: services.remove_service(ctx, [service.short_name]))

    def set_availability(self, node: NodeState, availability: str, stack: str | None) -> None:
        self._run_action(_one_stack(stack, "drain or activate nodes"),
                         lambda ctx: nodes.set_availability(ctx, node.id, availability))

    def models(self, stack: str | None) -> ModelsOverview:
        ctx = ActionContext(self.connector, _one_stack(stack, "show models"),
                            Reporter(stream=io.StringIO(), color=False), wait=False)
        return self._link.call(  # type: ignore[no-any-return]
            lambda: models.overview(ctx, endpoints=self._endpoints, known_runs=self._known_runs))

    def promote(self, stack: str | None, model: str, version: str) -> None:
        self._run_action(_one_stack(stack, "promote models"),
                         lambda ctx: models.promote(ctx, model, version,
                                                    endpoints=self._endpoints))

    def open_logs(
        self, services: Sequence[ServiceState], *, tail: int | None, follow: bool = True
    ) -> LogStream:
        stacks = {s.stack for s in services}
        stack = stacks.pop() if len(stacks) == 1 else None
        opts = LogOptions(follow=follow, tail=tail, timestamps=True)
        targets = {s.name: s.short_name for s in services}
        return self._link.call(  # type: ignore[no-any-return]
            lambda: ActionLogStream(self.connector, stack, targets, opts).start()
        )

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        return run_push(self._host, request, emit)

    def close(self) -> None:
        self._link.forget()


def _one_stack(stack: str | None, what: str) -> str:
    if stack is None:
        raise ConfigError(f"changes are locked and audited per stack, and this dashboard shows "
                          f"every service, not one stack: it cannot {what}",
                          fix=f"start mlops-tui with --stack NAME to {what}")
    return stack


def host_backend_factory(host: Host, endpoints: Endpoints | None = None) -> Callable[[], Backend]:
    """A factory of the backend for an inventory ``Host``: the local engine, or a manager over
    one SSH connection (the deployer's connector: same host-key policy and errors)."""

    def make() -> Backend:
        return DockerBackend(lambda: connect(host.ssh, docker_host=host.docker_host),
                             host.label, host=host, endpoints=endpoints)

    return make


def run_push(
    host: Host, request: DeployRequest, emit: Callable[[DeployEvent], object]
) -> DeployResult:
    """The deployer's ``push`` on ``host`` (its own connection, as ``deployer push`` opens one):
    values = defaults < the host's inventory values < ``-f`` files < ``--set``, as the CLI
    layers them. Refuses values naming another stack than the one on screen."""
    from deployer.actions.push import push
    from deployer.engine.client import local_engine
    from deployer.errors import MlopsError
    from deployer.host_values import load_host_values
    from deployer.push_inputs import PushOptions

    reporter = DashboardReporter(emit, check=request.check)
    stack = request.stack or "?"
    label = host.label
    try:
        values = load_host_values(host, [Path(f) for f in request.values_files], request.sets)
        stack = values.stack.name
        if request.stack is not None and stack != request.stack:
            raise ConfigError(
                f"the values deploy stack {stack!r} but the dashboard shows stack "
                f"{request.stack!r}; nothing was deployed",
                fix=f"start mlops-tui with --stack {stack}, or pass the values of "
                f"{request.stack} with -f",
            )
        conn = connect(host.ssh, docker_host=host.docker_host)
        label = conn.host
        try:
            plan = push(ActionContext(conn, stack, reporter), values,
                        PushOptions(check=request.check), local=local_engine(conn))
        finally:
            conn.close()
    except MlopsError as exc:
        reason = exc.message if not exc.fix else f"{exc.message} (fix: {exc.fix})"
        reporter.step(label, "failed", "push", stack, exc.message)
        return DeployResult("failed", stack, label, request.check, reason)
    steps = tuple(f"{s.kind} {s.target}" for s in plan.steps)
    if not plan.changed:
        unchanged = f"revision {plan.revision} unchanged" if plan.revision else "nothing to do"
        return DeployResult("ok", stack, label, request.check, unchanged)
    reason = f"revision {plan.revision}" if plan.revision is not None else "new revision"
    if plan.reason:
        reason += f": {plan.reason}"
    return DeployResult("changed", stack, label, request.check, reason, steps)
