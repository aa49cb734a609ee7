"""Actions on services of a deployed stack: scale, restart, roll back one service, remove one.

Each one reads the stack (facts), plans the ``docker service`` command (pure: ``plan_*``), then,
under the stack's deploy lock, runs it through the connector, waits until the stack converged and
writes the audit line. The CLI and the dashboard both call these.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from deployer.actions.base import ActionContext, locked, record
from deployer.converge import ConvergeError, wait_converged
from deployer.engine.client import docker_errors
from deployer.errors import CommandError, ConfigError, DeployError
from deployer.polling import poll_until
from deployer.scale import ScaleChange, declared_replicas, drift_notes, plan_scale, scale_argv
from deployer.state import StackState, read_revision
from deployer.swarm import ServiceState, SwarmSnapshot, read_snapshot


@dataclass(frozen=True)
class Command:
    """One planned change: what it does to which service, and the argv that does it."""

    kind: str
    target: str
    argv: tuple[str, ...]
    detail: str = ""


# ---------------------------------------------------------------------------------------------
# facts


def snapshot(ctx: ActionContext) -> SwarmSnapshot:
    """The stack's services and tasks (two API calls)."""
    with docker_errors(ctx.host):
        return read_snapshot(ctx.conn.docker_client().api, ctx.stack, include_nodes=False)


def deployed(ctx: ActionContext) -> SwarmSnapshot:
    """``snapshot``, refusing a stack that has no service on this host."""
    found = snapshot(ctx)
    if not found.services:
        raise DeployError(f"stack {ctx.stack} is not deployed on {ctx.host}",
                          fix="check the name (--stack) and the host, or `deployer push` it")
    return found


def service_of(found: SwarmSnapshot, name: str, verb: str) -> ServiceState:
    """The service called ``name`` (short or full name, or id), or a ``ConfigError`` listing
    the stack's services."""
    service = found.service(name)
    if service is None:
        known = ", ".join(s.short_name for s in found.services) or "none"
        raise ConfigError(f"{verb}: stack {found.stack} has no service {name!r}",
                          fix=f"its services: {known}")
    return service


# ---------------------------------------------------------------------------------------------
# plans (pure)


def plan_restart(found: SwarmSnapshot, names: Sequence[str]) -> list[Command]:
    """``docker service update --force`` per service: every task replaced, spec unchanged."""
    commands = []
    for name in names:
        service = service_of(found, name, "restart")
        commands.append(Command("restart", service.short_name,
                                ("docker", "service", "update", "--force", "--detach",
                                 service.name), "every task replaced"))
    return commands


def plan_service_rollback(found: SwarmSnapshot, name: str) -> Command:
    """``docker service rollback``: Swarm's previous spec of the service."""
    service = service_of(found, name, "rollback")
    return Command("rollback", service.short_name,
                   ("docker", "service", "rollback", "--detach", service.name),
                   "Swarm's previous spec")


def plan_service_remove(found: SwarmSnapshot, names: Sequence[str]) -> list[Command]:
    """``docker service rm`` per service."""
    commands = []
    for name in names:
        service = service_of(found, name, "remove")
        commands.append(Command("remove-service", service.short_name,
                                ("docker", "service", "rm", service.name)))
    return commands


# ---------------------------------------------------------------------------------------------
# execution


def settled_rollbacks(found: SwarmSnapshot) -> set[str]:
    """Services whose last change was a rollback that already completed (an earlier
    ``rollback SERVICE``): the state lingers until their next update and is no failure of ours."""
    return {s.short_name for s in found.services if s.update_state == "rollback_completed"}


def wait(ctx: ActionContext, before: SwarmSnapshot, rolled_back: Collection[str] = ()) -> None:
    """Wait until the stack converged (progress to the events), or raise ``ConvergeError``;
    nothing when ``ctx.wait`` is off."""
    if not ctx.wait:
        return
    wait_converged(ctx.conn.docker_client().api, ctx.stack, ctx.host, timeout=ctx.timeout,
                   on_progress=lambda svc: ctx.events.progress(ctx.host, svc),
                   rolled_back=settled_rollbacks(before) | set(rolled_back))


def stopping_tasks(found: SwarmSnapshot, services: Collection[str]) -> list[str]:
    """Tasks of ``services`` Swarm no longer wants but that still run on a reachable node
    (the convergence wait counts them out as soon as they are told to stop; a node that is
    down never reports them stopped, so those are left out)."""
    ready = {n.id for n in found.nodes if n.state == "ready"}
    wanted = {s.id: s.short_name for s in found.services if s.short_name in services}
    return [f"{wanted[t.service_id]}.{t.slot}" for t in found.tasks
            if t.service_id in wanted and t.state == "running"
            and t.desired_state not in ("running", "ready", "accepted")
            and (not found.nodes or t.node_id in ready)]


def wait_stopped(ctx: ActionContext, services: Collection[str]) -> None:
    """After a scale-down: until the removed tasks really stopped (``ctx.wait`` only)."""
    if not ctx.wait or not services:
        return

    def done() -> bool:
        with docker_errors(ctx.host):
            found = read_snapshot(ctx.conn.docker_client().api, ctx.stack)
        return not stopping_tasks(found, services)

    poll_until(f"tasks of {', '.join(sorted(services))} still stopping", done, ctx.timeout,
               fix="look at them with `deployer status`; raise --timeout")


def apply(ctx: ActionContext, state: StackState, action: str, commands: Sequence[Command],
          before: SwarmSnapshot, *, rolled_back: Collection[str] = (),
          run: Sequence[Command] | None = None, **details: object) -> None:
    """Run ``commands`` (or just ``run`` of them, when one command does several; already under
    the lock), wait, report each, and audit ``action`` (``<action>-failed`` with the error when
    the stack does not converge)."""
    try:
        for command in commands if run is None else run:
            ctx.conn.run(list(command.argv))
        wait(ctx, before, rolled_back)
    except ConvergeError as exc:
        record(ctx, state, f"{action}-failed", **details, error=exc.message)
        raise
    for command in commands:
        ctx.events.step(ctx.host, "changed", command.kind, command.target, command.detail,
                        command.argv)
    record(ctx, state, action, **details, revision=state.current)


def scale(ctx: ActionContext, requests: Mapping[str, int]) -> list[ScaleChange]:
    """Set replica counts (``ok`` where a count is already right) and say when the result
    drifts from the values the stack was pushed with."""
    before = deployed(ctx)
    changes = plan_scale(before, requests)
    for change in changes:
        if not change.changed:
            ctx.events.step(ctx.host, "ok", "scale", change.service, f"{change.new} replica(s)")
    todo = [c for c in changes if c.changed]
    if not todo:
        return changes
    argv = tuple(scale_argv(todo))
    # One command scales them all; each service gets its own step line.
    commands = [Command("scale", c.service, argv, f"{c.old} -> {c.new}") for c in todo]
    with locked(ctx) as state:
        apply(ctx, state, "scale", commands, before, run=commands[:1],
              services={c.service: c.new for c in todo})
        wait_stopped(ctx, [c.service for c in todo if c.new < c.old])
        revision = None if state.current is None else read_revision(ctx.conn, state,
                                                                     state.current)
        declared = declared_replicas(revision.stack_file if revision else None)
        for note in drift_notes(declared, todo):
            ctx.events.info(note)
    return changes


def restart(ctx: ActionContext, names: Sequence[str]) -> None:
    """Replace every task of the named services (a forced update) and wait."""
    before = deployed(ctx)
    commands = plan_restart(before, names)
    with locked(ctx) as state:
        apply(ctx, state, "restart", commands, before, services=[c.target for c in commands])


def rollback_service(ctx: ActionContext, name: str) -> None:
    """Return one service to Swarm's previous spec and wait until it is back."""
    before = deployed(ctx)
    command = plan_service_rollback(before, name)
    with locked(ctx) as state:
        try:
            ctx.conn.run(list(command.argv))
        except CommandError as exc:
            if "previous spec" in exc.stderr:
                raise DeployError(f"{command.target} has no previous spec to roll back to "
                                  "(it was never updated)") from exc
            raise
        apply(ctx, state, "rollback-service", [], before, rolled_back={command.target},
              service=command.target)
        ctx.events.step(ctx.host, "changed", command.kind, command.target, command.detail,
                        command.argv)
        ctx.events.info(f"{command.target} now differs from revision {state.current}: the "
                        "next push that changes anything redeploys the values' spec "
                        "(`deployer push --force` does it now)")


def remove_service(ctx: ActionContext, names: Sequence[str]) -> None:
    """Remove the named services from the stack (the rest of it stays as it is) and wait until
    they are gone."""
    before = deployed(ctx)
    commands = plan_service_remove(before, names)
    gone = {c.target for c in commands}
    with locked(ctx) as state:
        for command in commands:
            ctx.conn.run(list(command.argv))
        if ctx.wait:
            poll_until(f"{', '.join(sorted(gone))} still not removed",
                       lambda: not gone & {s.short_name for s in snapshot(ctx).services},
                       ctx.timeout, fix="raise --timeout, or look with `deployer status`")
        for command in commands:
            ctx.events.step(ctx.host, "changed", command.kind, command.target, "",
                            command.argv)
        record(ctx, state, "remove-service", services=sorted(gone), revision=state.current)
