"""`deployer` command line: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from deployer import __version__
from deployer.commands.arguments import check_arguments
from deployer.errors import MlopsError

# Sub-command modules, in the order `deployer --help` lists them. A module that is not there yet
# (work in progress on another branch of the tree) is skipped rather than breaking the CLI.
COMMAND_MODULES = (
    "deployer.commands.render",
    "deployer.commands.deploy",
    "deployer.commands.manage",
    "deployer.commands.nodes",
    "deployer.commands.models",
    "deployer.commands.compose",
    "deployer.commands.cache",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="deployer",
        description="Render, build, ship and run the MLOps stack on Docker Compose and Swarm.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deployer` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", 0) >= 2 else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        check_arguments(args)  # option values no command can use: refused before any host
        return func(args)
    except MlopsError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
