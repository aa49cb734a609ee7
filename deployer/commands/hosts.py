"""Running an action on every selected host, Ansible-like, and the options every such command
shares (target, stack, values, timeout, lock): what `deployer status/scale/.../nodes/models` have
in common. Parsing and output only."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.commands.render import add_values_arguments
from deployer.commands.targets import (
    add_stack_argument,
    add_target_arguments,
    hosts_of,
    load_host_values,
    open_connector,
)
from deployer.errors import ConnectError, MlopsError
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.actions.base import ActionContext
    from deployer.connectors.base import Connector
    from deployer.inventory import Host


def add_action_arguments(parser: argparse.ArgumentParser, *, mutating: bool = False,
                         values_short: bool = True) -> None:
    """Target, stack and values options; with ``mutating`` also ``--timeout``/``--break-lock``."""
    add_target_arguments(parser)
    add_stack_argument(parser)
    # Values give the stack name (inventory overlays included) and, for rollback, the content
    # of pruned secrets/configs.
    if values_short:
        add_values_arguments(parser)
    else:  # `logs -f` is --follow, as in docker and tail
        parser.add_argument("--values", dest="values_files", action="append", type=Path,
                            default=[], metavar="FILE", help="values overlay (repeatable)")
        parser.add_argument("--set", dest="sets", action="append", default=[],
                            metavar="KEY=VALUE", help="override one value (repeatable)")
    if mutating:
        parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                            help="how long to wait for the stack (default 300)")
        parser.add_argument("--break-lock", action="store_true",
                            help="take the stack's deploy lock even if another run holds it")


def stack_name(host: Host, args: argparse.Namespace) -> str:
    """``--stack``, else ``stack.name`` of the values (defaults < host overlays < -f < --set);
    read-only commands take just that key, without building the values model."""
    if args.stack:
        return str(args.stack)
    if getattr(args, "read_only", False):
        from deployer.host_values import peek_stack_name

        return peek_stack_name(host, args.values_files, args.sets)
    return load_host_values(host, args).stack.name


Action = Callable[["ActionContext", "Host"], object]


def action_context(conn: Connector, stack: str, args: argparse.Namespace,
                   reporter: Reporter) -> ActionContext:
    from deployer.actions.base import ActionContext

    return ActionContext(conn, stack, reporter, break_lock=getattr(args, "break_lock", False),
                         timeout=getattr(args, "timeout", 300.0))


def each_host(args: argparse.Namespace, reporter: Reporter, command: str, action: Action, *,
              recap: bool = True) -> int:
    """Run ``action`` on every target host, Ansible-like: a failed host does not stop the
    others; recap at the end; exit code 4 if a host was unreachable, else the error's."""
    errors: list[MlopsError] = []
    for host in hosts_of(args):
        stack = stack_name(host, args)
        try:
            conn = open_connector(host)
        except ConnectError as exc:
            reporter.unreachable(host.label)
            reporter.text(exc.render())
            errors.append(exc)
            continue
        try:
            action(action_context(conn, stack, args, reporter), host)
        except MlopsError as exc:
            reporter.step(conn.host, "failed", command, stack)
            reporter.text(exc.render())
            errors.append(exc)
        finally:
            conn.close()
    if recap:
        reporter.recap()
    code = reporter.exit_code()
    if errors and code != 4:
        code = errors[-1].exit_code
    return code


def table(rows: Sequence[tuple[str, ...]], columns: Sequence[str]) -> str:
    """Left-aligned columns, two spaces apart (plain text: it goes to pipes and logs too)."""
    from deployer.history import table as aligned

    return aligned(rows, columns)
