"""`mlops-tui` command line: argument parsing and start-up only."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deployer import __version__
from deployer.commands.targets import add_host_arguments, add_ssh_arguments
from deployer.errors import ConfigError, MlopsError

if TYPE_CHECKING:
    from tui.backend import Backend


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mlops-tui``."""
    parser = argparse.ArgumentParser(
        prog="mlops-tui",
        description="Dashboard of the MLOps stack on Docker Swarm: services, tasks, logs, "
        "scaling; on the local engine or a manager over SSH.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    target = parser.add_mutually_exclusive_group()
    add_host_arguments(target)  # the same options as the deployer's
    target.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="show a recorded snapshot instead of a live engine (read-only)",
    )
    target.add_argument(
        "--compose",
        action="store_true",
        help="a Compose project on the local engine (`deployer compose up`), named by --stack",
    )
    add_ssh_arguments(parser)
    _add_view_arguments(parser)
    return parser


def _add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """What the dashboard shows and compares with: stack, refresh, values, model endpoints."""
    parser.add_argument(
        "--endpoint",
        dest="endpoints",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="where mlflow-server / sklearn-model / cnn-image answer as the manager reaches "
        "them, for the Models view (default: the stack's published ports; repeatable)",
    )
    parser.add_argument("--stack", default="mlops", help="stack name (default: %(default)s)")
    parser.add_argument(
        "--refresh",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: %(default)s)",
    )
    parser.add_argument(
        "-f",
        "--values",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="values file(s): replica drift is shown against them, `w` writes a live count "
        "back to them, `d` deploys them",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="values override (as for the deployer)",
    )


def build_backend(
    args: argparse.Namespace,
) -> tuple[Backend, list[tuple[str, Callable[[], Backend]]]]:
    """The first backend to show and the hosts the user can switch between."""
    from tui.backend import host_backend_factory
    from tui.replay import ReplayBackend

    if args.replay:
        if not args.replay.is_file():
            raise ConfigError(f"--replay {args.replay}: no such file")
        return ReplayBackend.from_file(args.replay), []
    if args.compose:
        from tui.compose_backend import ComposeBackend

        return ComposeBackend(args.stack), []
    from deployer.inventory import select_hosts

    hosts = select_hosts(
        host=args.host,
        inventory=args.inventory,
        limit=args.limit,
        ssh_config=args.ssh_config,
        accept_new_host_key=args.accept_new_host_key,
    )
    if not hosts:
        raise ConfigError("no host selected", fix="check --limit against the inventory")
    from deployer.actions.models import parse_endpoints

    endpoints = parse_endpoints(args.endpoints)
    choices = [(h.label, host_backend_factory(h, endpoints)) for h in hosts]
    return choices[0][1](), choices


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlops-tui`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit and not args.inventory:
        parser.error("--limit needs -i/--inventory")
    if args.refresh <= 0:
        parser.error("--refresh must be more than 0 seconds")
    logging.basicConfig(level=logging.WARNING, filename=None)
    try:
        declared = None
        if args.values or args.sets:
            from tui.drift import declared_replicas

            declared = declared_replicas(args.values, args.sets)
        backend, hosts = build_backend(args)
    except MlopsError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    from tui.app import make_app

    app = make_app(
        backend,
        stack=args.stack or None,
        refresh_seconds=args.refresh,
        declared_replicas=declared,
        hosts=hosts,
        values_files=args.values,
        value_sets=args.sets,
    )
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
