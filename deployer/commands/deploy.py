"""`deployer push` (and later `build`, `rebuild`): ship the stack to its hosts."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.commands.render import add_values_arguments
from deployer.commands.targets import (
    add_target_arguments,
    hosts_of,
    load_host_values,
    local_engine,
    open_connector,
)
from deployer.errors import ConnectError, MlopsError
from deployer.operations import DEFAULT_RESOLVE_IMAGE, RESOLVE_IMAGE_CHOICES
from deployer.output import Reporter
from deployer.push import Pusher, PushOptions


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    add_values_arguments(parser)
    add_target_arguments(parser)
    parser.add_argument("--check", action="store_true",
                        help="show what would be created/updated/removed; change nothing")
    parser.add_argument("--diff", action="store_true",
                        help="show a unified diff of the deployed stack file vs the new one")
    parser.add_argument(
        "--resolve-image", choices=RESOLVE_IMAGE_CHOICES, default=DEFAULT_RESOLVE_IMAGE,
        help="docker stack deploy --resolve-image (default: never: images are shipped to the "
        "manager, not pulled from a registry; use always for registry images)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="how long to wait for the stack to converge (default 300)")
    parser.add_argument("--env-file", metavar="FILE",
                        help="read GOOGLE_API_KEY from FILE when not in the environment "
                        "(default: ./.env if present)")
    parser.add_argument("--break-lock", action="store_true",
                        help="take the stack's deploy lock even if another run holds it")
    parser.add_argument("--force", action="store_true",
                        help="deploy even if nothing changed")
    parser.add_argument("--no-rollback", dest="rollback", action="store_false",
                        help="on failure, leave the failed revision deployed")


def register(subparsers: Any) -> None:
    """Add the `push` sub-command."""
    p = subparsers.add_parser(
        "push", help="deploy the stack to a Swarm manager (idempotent)",
        description="Render the Swarm file, ship missing images, create secrets, deploy, wait "
        "until converged; roll back on failure. Does nothing (ok) if nothing changed.",
    )
    add_push_arguments(p)
    p.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    reporter = Reporter(verbose=args.verbose, check=args.check)
    options = PushOptions(
        check=args.check, diff=args.diff, resolve_image=args.resolve_image,
        timeout=args.timeout, break_lock=args.break_lock, force=args.force,
        rollback=args.rollback, env_file=args.env_file,
    )
    hosts = hosts_of(args)
    last_error: MlopsError | None = None
    for host in hosts:
        values = load_host_values(host, args)
        try:
            conn = open_connector(host)
        except ConnectError as exc:
            reporter.unreachable(host.label)
            reporter.text(exc.render())
            last_error = exc
            continue
        try:
            Pusher(conn, reporter, options, local=local_engine(conn)).push(values)
        except MlopsError as exc:
            reporter.step(conn.host, "failed", "push", values.stack.name)
            reporter.text(exc.render())
            last_error = exc
        finally:
            conn.close()
    reporter.recap()
    code = reporter.exit_code()
    if last_error is not None and code == 0:
        code = last_error.exit_code
    return code
