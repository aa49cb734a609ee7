"""Nodes of the Swarm: list them; drain, activate and label one (or set the values' labels).

The plans are pure (nodes in, ``docker node update`` argv out; ``None``/``[]`` when nothing is to
change, reported ``ok``). Changes run under the stack's deploy lock (a drain moves that stack's
tasks, which must not race a push), are audited in its log, and a drain or activate waits until
the node's tasks have moved and the stack (if deployed there) converged again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deployer.actions.base import ActionContext, locked, record
from deployer.converge import wait_converged
from deployer.engine.client import docker_errors
from deployer.errors import CommandError, ConfigError, DeployError
from deployer.swarm import TERMINAL_TASK_STATES, NodeState, read_nodes, read_snapshot

AVAILABILITIES = ("active", "pause", "drain")


@dataclass(frozen=True)
class NodeCommand:
    """One planned change to a node: what, to which node, and the argv that does it."""

    kind: str
    node: str
    argv: tuple[str, ...]
    detail: str = ""


# ---------------------------------------------------------------------------------------------
# facts


def nodes(ctx: ActionContext) -> tuple[NodeState, ...]:
    """Every node with its running-task count (two API calls). Needs a manager."""
    with docker_errors(ctx.host):
        try:
            return read_nodes(ctx.conn.docker_client().api)
        except Exception as exc:
            if "not a swarm manager" in str(exc) or "This node is not" in str(exc):
                raise DeployError(
                    f"{ctx.host} is not a Swarm manager: it cannot list or change nodes",
                    fix="point --host at a manager of the cluster",
                ) from exc
            raise


def node_of(found: Sequence[NodeState], name: str) -> NodeState:
    """The node called ``name`` (hostname, id or id prefix), or a ``ConfigError`` listing the
    nodes."""
    matches = [n for n in found if n.matches(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(n.hostname for n in found) or "none"
    if matches:
        raise ConfigError(f"node {name!r} is ambiguous: it matches "
                          f"{', '.join(n.hostname for n in matches)}",
                          fix="use the node's hostname or its full id")
    raise ConfigError(f"the swarm has no node {name!r}", fix=f"its nodes: {known}")


def summary(found: Sequence[NodeState]) -> list[str]:
    """Lines for ``deployer status`` on a cluster (nothing on a one-node swarm): how many nodes
    are ready, then each node that is not, with Swarm's reason (pure)."""
    if len(found) < 2:
        return []
    ready = [n for n in found if n.state == "ready"]
    lines = [f"nodes: {len(ready)}/{len(found)} ready"
             + "".join(f", {n.hostname} {n.availability}" for n in ready
                       if n.availability != "active")]
    for node in found:
        if node.state != "ready":
            why = f" ({node.message})" if node.message else ""
            lines.append(f"node {node.hostname} is {node.state.upper()}{why}: its tasks are "
                         "rescheduled on the other nodes")
    return lines


def status_lines(ctx: ActionContext) -> list[str]:
    """``summary`` of the manager's nodes for ``deployer status``; nothing when the engine
    cannot list nodes (not a manager): the services table is what status is for."""
    from deployer.errors import MlopsError

    try:
        return summary(nodes(ctx))
    except MlopsError:
        return []


# ---------------------------------------------------------------------------------------------
# plans (pure)


def plan_availability(found: Sequence[NodeState], name: str,
                      availability: str) -> NodeCommand | None:
    """``docker node update --availability A NODE``, or None when it already is."""
    if availability not in AVAILABILITIES:
        raise ConfigError(f"availability {availability!r}: expected one of "
                          f"{', '.join(AVAILABILITIES)}")
    node = node_of(found, name)
    if node.availability == availability:
        return None
    return NodeCommand(availability, node.hostname,
                       ("docker", "node", "update", "--availability", availability, node.id),
                       f"{node.availability} -> {availability}")


def plan_labels(found: Sequence[NodeState], name: str, add: Mapping[str, str],
                remove: Sequence[str] = ()) -> NodeCommand | None:
    """``docker node update --label-add K=V ... --label-rm K ... NODE`` for what differs (labels
    not named are left alone), or None when the node already has exactly these."""
    node = node_of(found, name)
    clash = sorted(set(add) & set(remove))
    if clash:
        raise ConfigError(f"label {clash[0]!r} is both added and removed on {node.hostname}")
    argv: list[str] = []
    changes: list[str] = []
    for key in sorted(add):
        if node.labels.get(key) != add[key]:
            argv += ["--label-add", f"{key}={add[key]}"]
            changes.append(f"{key}={add[key]}")
    for key in sorted(remove):
        if key in node.labels:
            argv += ["--label-rm", key]
            changes.append(f"-{key}")
    if not argv:
        return None
    return NodeCommand("label", node.hostname, ("docker", "node", "update", *argv, node.id),
                       ", ".join(changes))


def plan_node_labels(found: Sequence[NodeState],
                     desired: Mapping[str, Mapping[str, str]]) -> list[NodeCommand]:
    """The commands that give every node named in ``desired`` (``swarm.node_labels`` of the
    values: hostname -> labels) those labels. Every name must be a node: a typo would otherwise
    silently leave a placement constraint unsatisfiable."""
    known = {n.hostname for n in found}
    unknown = sorted(set(desired) - known)
    if unknown:
        raise ConfigError(
            f"swarm.node_labels: the swarm has no node {unknown[0]!r}",
            fix=f"its nodes: {', '.join(sorted(known)) or 'none'} (names as `deployer nodes` "
            "lists them)",
        )
    commands = []
    for hostname in sorted(desired):
        command = plan_labels(found, hostname, desired[hostname])
        if command:
            commands.append(command)
    return commands


# ---------------------------------------------------------------------------------------------
# execution


def _run(ctx: ActionContext, command: NodeCommand) -> None:
    try:
        ctx.conn.run(list(command.argv))
    except CommandError as exc:
        if "not a swarm manager" in exc.stderr or "This node is not" in exc.stderr:
            raise DeployError(f"{ctx.host} is not a Swarm manager: it cannot change nodes",
                              fix="point --host at a manager of the cluster") from exc
        raise


def _wait_moved(ctx: ActionContext, node: NodeState) -> None:
    """Until nothing runs on a drained node any more, then until the stack converged.

    Not "no task *wanted* running there": a drained node's tasks are marked for shutdown at
    once but keep running until stopped, and Swarm's running count still includes them, so a
    stack wait started then would pass before any task actually moved."""
    import time

    deadline = time.monotonic() + ctx.timeout
    api = ctx.conn.docker_client().api
    while True:
        with docker_errors(ctx.host):
            tasks = api.tasks(filters={"node": node.id})
        left = sum(1 for t in tasks
                   if str((t.get("Status") or {}).get("State")) not in TERMINAL_TASK_STATES)
        if left == 0:
            break
        if time.monotonic() >= deadline:
            raise DeployError(f"{left} task(s) still run on {node.hostname} after "
                              f"{ctx.timeout:g} s of drain",
                              fix="look at them with `docker node ps`; raise --timeout")
        time.sleep(0.5)
    _wait_stack(ctx)


def _wait_stack(ctx: ActionContext) -> None:
    api = ctx.conn.docker_client().api
    with docker_errors(ctx.host):
        deployed = read_snapshot(api, ctx.stack, include_nodes=False).services
    if deployed:
        wait_converged(api, ctx.stack, ctx.host, timeout=ctx.timeout,
                       on_progress=lambda svc: ctx.events.progress(ctx.host, svc))


def set_availability(ctx: ActionContext, name: str, availability: str) -> NodeState:
    """Drain, pause or activate a node; a drain waits until its tasks moved and the stack
    converged elsewhere (``ctx.wait``). Returns the node as it was before."""
    found = nodes(ctx)
    node = node_of(found, name)
    command = plan_availability(found, name, availability)
    if command is None:
        ctx.events.step(ctx.host, "ok", availability, node.hostname,
                        f"already {availability}")
        return node
    with locked(ctx) as state:
        _run(ctx, command)
        if ctx.wait:
            if availability == "drain":
                _wait_moved(ctx, node)
            else:
                _wait_stack(ctx)
        ctx.events.step(ctx.host, "changed", command.kind, command.node, command.detail,
                        command.argv)
        record(ctx, state, f"node-{availability}", node=node.hostname, node_id=node.id,
               previous=node.availability)
    return node


def drain(ctx: ActionContext, name: str) -> NodeState:
    """Move every task off a node and keep new ones away."""
    return set_availability(ctx, name, "drain")


def activate(ctx: ActionContext, name: str) -> NodeState:
    """Let a node take tasks again (Swarm does not move running tasks back by itself)."""
    return set_availability(ctx, name, "active")


def label(ctx: ActionContext, name: str, add: Mapping[str, str],
          remove: Sequence[str] = ()) -> NodeCommand | None:
    """Add/replace and remove labels of one node."""
    found = nodes(ctx)
    command = plan_labels(found, name, add, remove)
    return _apply_labels(ctx, [command] if command else [], node_of(found, name).hostname)


def apply_node_labels(ctx: ActionContext,
                      desired: Mapping[str, Mapping[str, str]]) -> list[NodeCommand]:
    """Give the nodes the labels of the values (``swarm.node_labels``), changing only what
    differs. ``push`` can call this before deploying so placement sees the labels."""
    commands = plan_node_labels(nodes(ctx), desired)
    _apply_labels(ctx, commands, ", ".join(sorted(desired)) or "nodes")
    return commands


def _apply_labels(ctx: ActionContext, commands: Sequence[NodeCommand],
                  what: str) -> NodeCommand | None:
    if not commands:
        ctx.events.step(ctx.host, "ok", "label", what, "labels as wanted")
        return None
    with locked(ctx) as state:
        for command in commands:
            _run(ctx, command)
            ctx.events.step(ctx.host, "changed", command.kind, command.node, command.detail,
                            command.argv)
        record(ctx, state, "node-label",
               changes={c.node: c.detail for c in commands})
    return commands[-1]
