"""`deployer nodes`: the Swarm's nodes (list), and `drain`, `activate`, `label` one of them.
Argument parsing and output only; the work is in ``deployer.actions.nodes``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from deployer.commands.arguments import inherit_options
from deployer.commands.hosts import add_action_arguments, each_host, table
from deployer.commands.targets import load_host_values
from deployer.errors import ConfigError
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.actions.base import ActionContext
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
    p.set_defaults(func=run_list, read_only=True)
    add_action_arguments(p)

    q = sub.add_parser("ls", help="list the nodes (the default)")
    add_action_arguments(q)
    q.set_defaults(func=run_list, read_only=True)

    for name, text in (("drain", "move every task off a node and keep new ones away"),
                       ("activate", "let a node take tasks again")):
        q = sub.add_parser(name, help=text)
        q.add_argument("node", metavar="NODE", help="node hostname or id")
        add_action_arguments(q, mutating=True)
        q.set_defaults(func=run_availability, read_only=False,
                       availability=name if name == "drain" else "active")

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
    add_action_arguments(q, mutating=True)
    q.set_defaults(func=run_label, read_only=False)
    inherit_options(p, list(sub.choices.values()))  # `nodes --host H drain N` too


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


def run_list(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import nodes

    reporter = Reporter(verbose=args.verbose)

    def show(ctx: ActionContext, host: Host) -> None:
        found = nodes(ctx)
        reporter.text(f"[{ctx.host}] {len(found)} node(s)")
        reporter.text(table([
            (n.hostname + (" *" if n.leader else ""), n.role, n.availability,
             n.state + (f" ({n.message})" if n.state != "ready" and n.message else ""),
             n.engine_version or "-", n.address or "-", str(n.tasks_running),
             ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())) or "-")
            for n in found
        ], COLUMNS))

    return each_host(args, reporter, "nodes", show, recap=False)


def run_availability(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import set_availability

    return each_host(args, Reporter(verbose=args.verbose), args.availability,
                     lambda ctx, host: set_availability(ctx, args.node, args.availability))


def run_label(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import apply_node_labels, label

    if args.from_values:
        if args.node or args.labels or args.remove:
            raise ConfigError("label --from-values takes no NODE, KEY=VALUE or --rm",
                              fix="set the labels in the values (swarm.node_labels) instead")

        def from_values(ctx: ActionContext, host: Host) -> None:
            apply_node_labels(ctx, load_host_values(host, args).swarm.node_labels)

        return each_host(args, Reporter(verbose=args.verbose), "label", from_values)
    if not args.node or not (args.labels or args.remove):
        raise ConfigError("label: name a NODE and at least one KEY=VALUE or --rm KEY",
                          fix="e.g. `deployer nodes label worker1 zone=a`, or --from-values")
    add = parse_labels(args.labels)  # fails before connecting
    return each_host(args, Reporter(verbose=args.verbose), "label",
                     lambda ctx, host: label(ctx, args.node, add, args.remove))
