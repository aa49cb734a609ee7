"""`deployer nodes`: the Swarm's nodes (list), and `drain`, `activate`, `label` one of them.
Argument parsing and output only; the work is in ``deployer.actions.nodes``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.commands.render import add_values_arguments
from deployer.commands.targets import (
    add_stack_argument,
    add_target_arguments,
    hosts_of,
    load_host_values,
    open_connector,
)
from deployer.errors import ConfigError, ConnectError, MlopsError
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.inventory import Host

COLUMNS = ("NODE", "ROLE", "AVAILABILITY", "STATE", "ENGINE", "ADDRESS", "TASKS", "LABELS")


def register(subparsers: Any) -> None:
    """Add `nodes` with its sub-commands `ls` (the default), `drain`, `activate`, `label`."""
    p = subparsers.add_parser(
        "nodes", help="the Swarm's nodes; drain, activate or label one",
        description="List the nodes of the manager's swarm (role, availability, state, engine "
        "version, address, tasks running), or change one: drain (its tasks move to other "
        "nodes; waits until they did and the stack converged), activate, label. Changes take "
        "the stack's deploy lock and go to its audit log.",
    )
    sub = p.add_subparsers(dest="nodes_command", metavar="ACTION")
    p.set_defaults(func=run_list)
    _common(p)

    q = sub.add_parser("ls", help="list the nodes (the default)")
    _common(q)
    q.set_defaults(func=run_list)

    for name, text in (("drain", "move every task off a node and keep new ones away"),
                       ("activate", "let a node take tasks again")):
        q = sub.add_parser(name, help=text)
        q.add_argument("node", metavar="NODE", help="node hostname or id")
        _common(q, mutating=True)
        q.set_defaults(func=run_availability, availability=name if name == "drain" else "active")

    q = sub.add_parser(
        "label", help="add/remove node labels, or set the values' swarm.node_labels",
        description="`label NODE KEY=VALUE... [--rm KEY]` changes one node; `label "
        "--from-values` gives every node named in the values' swarm.node_labels its labels "
        "(inventory overlays included). Labels not named are left alone.",
    )
    q.add_argument("node", nargs="?", metavar="NODE", help="node hostname or id")
    q.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    q.add_argument("--rm", dest="remove", action="append", default=[], metavar="KEY",
                   help="remove this label (repeatable)")
    q.add_argument("--from-values", action="store_true",
                   help="apply swarm.node_labels of the values")
    _common(q, mutating=True)
    q.set_defaults(func=run_label)


def _common(parser: argparse.ArgumentParser, *, mutating: bool = False) -> None:
    add_target_arguments(parser)
    add_stack_argument(parser)
    add_values_arguments(parser)
    if mutating:
        parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                            help="how long to wait for tasks to move (default 300)")
        parser.add_argument("--break-lock", action="store_true",
                            help="take the stack's deploy lock even if another run holds it")


def parse_labels(texts: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments -> a mapping; ``ConfigError`` naming a malformed one."""
    labels: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"label {text!r}: expected KEY=VALUE, e.g. zone=a",
                              fix="remove a label with --rm KEY")
        labels[key.strip()] = value
    return labels


Action = Callable[[Any, "Host", Reporter], object]


def _each_host(args: argparse.Namespace, reporter: Reporter, command: str,
               action: Action) -> int:
    from deployer.actions.base import ActionContext

    errors: list[MlopsError] = []
    for host in hosts_of(args):
        stack = args.stack or load_host_values(host, args).stack.name
        try:
            conn = open_connector(host)
        except ConnectError as exc:
            reporter.unreachable(host.label)
            reporter.text(exc.render())
            errors.append(exc)
            continue
        try:
            ctx = ActionContext(conn, stack, reporter,
                                break_lock=getattr(args, "break_lock", False),
                                timeout=getattr(args, "timeout", 300.0))
            action(ctx, host, reporter)
        except MlopsError as exc:
            reporter.step(conn.host, "failed", command, stack)
            reporter.text(exc.render())
            errors.append(exc)
        finally:
            conn.close()
    if command != "nodes":
        reporter.recap()
    code = reporter.exit_code()
    if errors and code != 4:
        code = errors[-1].exit_code
    return code


def table(rows: list[tuple[str, ...]]) -> str:
    from deployer.history import table as history_table

    return history_table(rows, COLUMNS)


def run_list(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import nodes

    def show(ctx: Any, host: Host, reporter: Reporter) -> None:
        found = nodes(ctx)
        reporter.text(f"[{ctx.host}] {len(found)} node(s)")
        reporter.text(table([
            (n.hostname + (" *" if n.leader else ""), n.role, n.availability,
             n.state + (f" ({n.message})" if n.state != "ready" and n.message else ""),
             n.engine_version or "-", n.address or "-", str(n.tasks_running),
             ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())) or "-")
            for n in found
        ]))

    return _each_host(args, Reporter(verbose=args.verbose), "nodes", show)


def run_availability(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import set_availability

    return _each_host(args, Reporter(verbose=args.verbose), args.availability,
                      lambda ctx, host, reporter: set_availability(ctx, args.node,
                                                                   args.availability))


def run_label(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import apply_node_labels, label

    if args.from_values:
        if args.node or args.labels or args.remove:
            raise ConfigError("label --from-values takes no NODE, KEY=VALUE or --rm",
                              fix="set the labels in the values (swarm.node_labels) instead")

        def from_values(ctx: Any, host: Host, reporter: Reporter) -> None:
            apply_node_labels(ctx, load_host_values(host, args).swarm.node_labels)

        return _each_host(args, Reporter(verbose=args.verbose), "label", from_values)
    if not args.node or not (args.labels or args.remove):
        raise ConfigError("label: name a NODE and at least one KEY=VALUE or --rm KEY",
                          fix="e.g. `deployer nodes label worker1 zone=a`, or --from-values")
    add = parse_labels(args.labels)  # fails before connecting
    return _each_host(args, Reporter(verbose=args.verbose), "label",
                      lambda ctx, host, reporter: label(ctx, args.node, add, args.remove))
