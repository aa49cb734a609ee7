"""Day-two commands on a deployed stack: `status`, `scale`, `restart`, `logs`, `remove`,
`rollback`, `history`. Argument parsing and output only: the work (lock, audit, convergence wait)
is in the actions (``deployer.actions``), which the dashboard calls too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployer.commands.hosts import (
    action_context,
    add_action_arguments,
    each_host,
    stack_name,
    table,
)
from deployer.commands.targets import hosts_of, load_host_values, open_connector
from deployer.errors import ConfigError
from deployer.options import DEFAULT_RESOLVE_IMAGE, RESOLVE_IMAGE_CHOICES
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.actions.base import ActionContext
    from deployer.inventory import Host

COLUMNS = ("SERVICE", "REPLICAS", "IMAGE", "PORTS", "UPDATE", "HEALTH")

#: Exit code of a run stopped with Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED = 130


def register(subparsers: Any) -> None:
    """Add `status`, `scale`, `restart`, `logs`, `remove`, `rollback` and `history`."""
    _register_service_commands(subparsers)
    _register_stack_commands(subparsers)


def _register_service_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="services of the stack: replicas, image, health")
    add_action_arguments(p)
    p.set_defaults(func=run_status, read_only=True)

    p = subparsers.add_parser(
        "scale", help="set replica counts and wait until converged",
        description="Scale services of the deployed stack (SERVICE=N, N >= 0) and wait until "
        "the stack has converged. Says so when the result differs from the pushed values.",
    )
    p.add_argument("requests", nargs="+", metavar="SERVICE=N")
    add_action_arguments(p, mutating=True)
    p.set_defaults(func=run_scale)

    p = subparsers.add_parser(
        "restart", help="replace every task of services (a forced update) and wait",
        description="Restart services of the deployed stack: every task is replaced with the "
        "same spec (`docker service update --force`), then the stack is waited on.",
    )
    p.add_argument("services", nargs="+", metavar="SERVICE")
    add_action_arguments(p, mutating=True)
    p.set_defaults(func=run_restart)

    p = subparsers.add_parser(
        "logs", help="logs of a service, or of the whole stack with service prefixes",
    )
    p.add_argument("service", nargs="?", metavar="SERVICE",
                   help="service short name (default: every service, interleaved)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--since", metavar="WHEN",
                   help="only lines since a duration ago (10m, 1h30m) or a time (RFC 3339)")
    p.add_argument("-n", "--tail", type=int, metavar="N",
                   help="only the last N lines of each service")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    add_action_arguments(p, values_short=False)
    p.set_defaults(func=run_logs, read_only=True)


def _register_stack_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "remove", help="remove the stack (volumes kept unless --volumes)",
        description="Remove the stack's services and networks, and the secrets and configs "
        "push created for it; wait until they are gone. Volumes (data) are kept unless "
        "--volumes, which asks for confirmation (or --yes).",
    )
    p.add_argument("--volumes", action="store_true",
                   help="also remove the stack's volumes (their data is lost)")
    p.add_argument("-y", "--yes", action="store_true", help="confirm without asking")
    add_action_arguments(p, mutating=True)
    p.set_defaults(func=run_remove)

    p = subparsers.add_parser(
        "rollback", help="roll one service back, or the stack to a stored revision",
        description="With SERVICE: Swarm's previous spec of that service. Without: redeploy "
        "the previous successfully deployed revision (or --to-revision N), recreating its "
        "secrets/configs from the given values when they were pruned.",
    )
    p.add_argument("service", nargs="?", metavar="SERVICE")
    p.add_argument("--to-revision", type=int, metavar="N", help="the revision to redeploy")
    p.add_argument("--resolve-image", choices=RESOLVE_IMAGE_CHOICES,
                   default=DEFAULT_RESOLVE_IMAGE, help="docker stack deploy --resolve-image")
    p.add_argument("--env-file", metavar="FILE",
                   help="read GOOGLE_API_KEY from FILE (to recreate a pruned secret)")
    add_action_arguments(p, mutating=True)
    p.set_defaults(func=run_rollback)

    p = subparsers.add_parser("history", help="the stack's revisions (time, who, values, images)")
    add_action_arguments(p)
    p.set_defaults(func=run_history, read_only=True)


# ---------------------------------------------------------------------------------------------
# status


def run_status(args: argparse.Namespace) -> int:
    from deployer.actions.nodes import status_lines
    from deployer.actions.services import snapshot

    reporter = Reporter(verbose=args.verbose)
    for host in hosts_of(args):
        stack = stack_name(host, args)
        with open_connector(host) as conn:
            ctx = action_context(conn, stack, args, reporter)
            found = snapshot(ctx)
            print(f"[{conn.host}] stack {stack}: {len(found.services)} service(s)")
            rows: list[tuple[str, ...]] = [
                (s.short_name, s.replicas_text, s.image, ", ".join(str(p) for p in s.ports),
                 s.update_state or "-", s.health)
                for s in found.services
            ]
            print(table(rows, COLUMNS))
            for line in status_lines(ctx):  # a cluster's nodes not ready (none on one node)
                print(line)
    return 0


# ---------------------------------------------------------------------------------------------
# scale, restart


def run_scale(args: argparse.Namespace) -> int:
    from deployer.actions.services import scale
    from deployer.scale import parse_requests

    requests: Mapping[str, int] = parse_requests(args.requests)  # fails before connecting
    return each_host(args, Reporter(verbose=args.verbose), "scale",
                      lambda ctx, host: scale(ctx, requests))


def run_restart(args: argparse.Namespace) -> int:
    from deployer.actions.services import restart

    return each_host(args, Reporter(verbose=args.verbose), "restart",
                      lambda ctx, host: restart(ctx, args.services))


# ---------------------------------------------------------------------------------------------
# logs


def run_logs(args: argparse.Namespace) -> int:
    from deployer.actions.logs import LogStream, print_stream
    from deployer.actions.services import deployed, service_of
    from deployer.logs import LogLine, LogOptions, check_since

    if args.tail is not None and args.tail < 0:
        raise ConfigError(f"--tail {args.tail}: expected 0 or more lines")
    opts = LogOptions(follow=args.follow, since=check_since(args.since) if args.since else None,
                      tail=args.tail, timestamps=args.timestamps)
    hosts = hosts_of(args)
    if len(hosts) != 1:
        raise ConfigError(f"logs reads one host at a time; the selection has {len(hosts)}",
                          fix="narrow it with --limit HOST")
    host = hosts[0]
    stack = stack_name(host, args)
    conn = open_connector(host)
    try:
        found = deployed(action_context(conn, stack, args, Reporter(verbose=args.verbose)))
        if args.service:
            service = service_of(found, args.service, "logs")
            services = [service]
            # One service: prefixes only tell its replicas apart.
            prefix = service.replicas_desired > 1
        else:
            services = list(found.services)
            prefix = True
        stream = LogStream(conn, stack, {s.name: s.short_name for s in services}, opts)
        if args.verbose:
            for argv in stream.argvs:
                print(f"$ {' '.join(argv)}", file=sys.stderr, flush=True)

        def emit(line: LogLine) -> None:
            print(line.render(prefix=prefix, timestamps=opts.timestamps), flush=True)

        try:
            print_stream(stream, emit, follow=opts.follow)
        except KeyboardInterrupt:
            # Ctrl-C is how a follow ends: cancel the readers' commands. No traceback, the
            # shell's exit code for SIGINT.
            stream.close()
            return INTERRUPTED
        for error in stream.errors:
            print(f"logs: {error}", file=sys.stderr)
        return 1 if stream.errors else 0
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# remove


def _confirm(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def run_remove(args: argparse.Namespace) -> int:
    from deployer.actions.stack import remove

    if args.volumes and not args.yes and not sys.stdin.isatty():
        raise ConfigError(
            "remove --volumes deletes the stack's volumes and their data; it asks for "
            "confirmation, but there is no terminal to ask on",
            fix="rerun with --volumes --yes to confirm (or without --volumes to keep the data)",
        )
    confirm = None if args.yes else _confirm
    return each_host(args, Reporter(verbose=args.verbose), "remove",
                      lambda ctx, host: remove(ctx, volumes=args.volumes, confirm=confirm))


# ---------------------------------------------------------------------------------------------
# rollback


def run_rollback(args: argparse.Namespace) -> int:
    from deployer.actions.services import rollback_service

    if args.service and args.to_revision is not None:
        raise ConfigError("rollback: give SERVICE or --to-revision N, not both",
                          fix="SERVICE rolls one service back to Swarm's previous spec; "
                          "--to-revision redeploys a whole stored revision")
    reporter = Reporter(verbose=args.verbose)
    if args.service:
        return each_host(args, reporter, "rollback",
                          lambda ctx, host: rollback_service(ctx, args.service))
    return each_host(args, reporter, "rollback",
                      lambda ctx, host: _rollback_stack(ctx, host, args))


def _rollback_stack(ctx: ActionContext, host: Host, args: argparse.Namespace) -> None:
    from deployer.actions.images import ensure_images
    from deployer.actions.stack import rollback
    from deployer.rollback import materials

    rollback(ctx, to_revision=args.to_revision, resolve_image=args.resolve_image,
             materials=lambda: materials(load_host_values(host, args), args.env_file),
             ensure_images=lambda images: ensure_images(ctx, images))


# ---------------------------------------------------------------------------------------------
# history


def run_history(args: argparse.Namespace) -> int:
    from deployer.history import COLUMNS as HISTORY_COLUMNS
    from deployer.history import read_history

    for host in hosts_of(args):
        stack = stack_name(host, args)
        with open_connector(host) as conn:
            history = read_history(conn, stack)
            current = history.current if history.current is not None else "none"
            print(f"[{conn.host}] stack {stack}: {len(history.revisions)} revision(s), "
                  f"current: {current}")
            if history.revisions:
                print(table([r.row() for r in history.revisions], HISTORY_COLUMNS))
    return 0
