"""`deployer compose up|down|ps|logs`: the Compose target on the local engine.

Renders docker-compose.yml from the values into the stack's compose folder (build contexts point
at the shipped services), then runs it through the compose CLI that is present (see
``deployer.compose``). Secrets reach Compose through the environment or ``--env-file``, never argv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.commands.build_options import add_build_options, build_options
from deployer.commands.render import add_values_arguments
from deployer.compose import ACTIONS, ComposeOptions, choose, compose_argv, probe
from deployer.errors import ConfigError
from deployer.output import Reporter

if TYPE_CHECKING:
    from deployer.values import StackValues

HOST = "local"


def compose_dir(stack: str) -> Path:
    """Where the stack's rendered Compose file lives: ``$MLOPS_STATE_DIR/compose/<stack>``
    (default ``~/.mlops``), so `down`, `ps` and `logs` find the project `up` started."""
    root = os.environ.get("MLOPS_STATE_DIR") or str(Path.home() / ".mlops")
    return Path(root) / "compose" / stack


def register(subparsers: Any) -> None:
    """Add `compose` with its actions."""
    p = subparsers.add_parser(
        "compose", help="run the stack on the local engine with Docker Compose (v2)",
        description="Render docker-compose.yml from the values and run it with `docker compose` "
        "(or a docker-compose v2 binary).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    helps = {
        "up": "build missing images and start the stack (detached)",
        "down": "stop and remove the stack's containers and network (volumes kept)",
        "ps": "list the stack's containers",
        "logs": "show the services' logs",
    }
    for action in ACTIONS:
        a = actions.add_parser(action, help=helps[action])
        add_values_arguments(a)
        a.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                       help="where to write docker-compose.yml (default: "
                       "$MLOPS_STATE_DIR/compose/<stack>, else ~/.mlops/compose/<stack>)")
        a.add_argument("--env-file", type=Path, metavar="FILE",
                       help="variables for Compose, e.g. GOOGLE_API_KEY (default: ./.env if "
                       "present)")
        a.add_argument("-v", "--verbose", action="count", default=0,
                       help="show the compose command")
        if action != "down":
            a.add_argument("services", nargs="*", metavar="SERVICE")
        if action == "up":
            a.add_argument("--build", action="store_true",
                           help="first build the images of the named services (default: all) "
                           "with the deployer's builder, as `deployer build` does; a service "
                           "whose image changed is recreated, the others are left running")
            a.add_argument("--wait", action="store_true",
                           help="wait until the services are running and healthy")
            # The same options as `deployer build`: the same inputs give the same
            # content-hash tags, so an unchanged service is not rebuilt.
            add_build_options(a, "build (with --build)")
        if action == "down":
            a.add_argument("--volumes", action="store_true",
                           help="also remove the named volumes (data is lost)")
        if action == "ps":
            a.add_argument("-a", "--all", action="store_true",
                           help="stopped containers too (e.g. the finished bucket-init job)")
        if action == "logs":
            a.add_argument("--follow", action="store_true", help="keep following new lines")
            a.add_argument("--tail", metavar="N")
            a.add_argument("--since", metavar="TIME")
        a.set_defaults(func=run_compose)


def _build(args: argparse.Namespace, values: StackValues, services: list[str],
           reporter: Reporter) -> bool:
    """The deployer's builder, not Compose's: it adds the extra CA certificates to the build
    context and skips unchanged images by content hash (Compose would rebuild them from a
    context without the certificates, missing the cached dependency layers)."""
    from deployer.build import Builder
    from deployer.engine.client import local_client

    options = build_options(args)
    client = local_client()
    try:
        results = Builder(client, reporter, options).build(values, services)
    finally:
        client.close()
    return not any(r.status == "failed" for r in results)


def _options(args: argparse.Namespace) -> ComposeOptions:
    # `--build` is done by the deployer before `compose up` (see _build), never by Compose.
    # The dev loop (`up --build SERVICE`) touches that service only: its dependencies (e.g.
    # the bucket-init job on the same image) are neither recreated nor run again.
    building = getattr(args, "build", False) and bool(getattr(args, "services", None))
    return ComposeOptions(
        build=False, wait=getattr(args, "wait", False), no_deps=building,
        volumes=getattr(args, "volumes", False), follow=getattr(args, "follow", False),
        tail=getattr(args, "tail", None), since=getattr(args, "since", None),
        all=getattr(args, "all", False),
    )


def _env_file(args: argparse.Namespace) -> Path | None:
    if args.env_file is not None:
        if not args.env_file.is_file():
            raise ConfigError(f"--env-file {args.env_file} does not exist")
        return Path(args.env_file).resolve()
    default = Path(".env")
    return default.resolve() if default.is_file() else None


def run_compose(args: argparse.Namespace) -> int:
    """Find the CLI first (nothing is written when there is none), render, run."""
    from deployer.render import render, write_files
    from deployer.resources import services_dir
    from deployer.values import load_values

    cli = choose(probe())
    values = load_values(args.values_files, args.sets,
                         allow_default_credentials=args.allow_default_credentials)
    stack = values.stack.name
    services: list[str] = list(getattr(args, "services", []) or [])
    known = [*values.active_services(), *values.jobs.by_name()]
    unknown = [s for s in services if s not in known]
    if unknown:
        raise ConfigError(f"unknown service(s): {', '.join(unknown)}",
                          fix=f"name some of: {', '.join(known)}")
    out_dir: Path = (args.output_dir or compose_dir(stack)).resolve()
    build_root = Path(os.path.relpath(services_dir(), out_dir)).as_posix()
    rendered = render(values, "compose", build_root=build_root)
    (path,) = write_files([rendered], out_dir)
    argv = compose_argv(cli, path, stack, args.action, services=services,
                        env_file=_env_file(args), options=_options(args))
    reporter = Reporter(verbose=args.verbose, stream=sys.stderr)
    if args.action == "up" and args.build and not _build(args, values, services, reporter):
        reporter.text("not starting: a build failed")
        reporter.recap()
        return reporter.exit_code()
    if args.verbose:
        reporter.info(f"{cli.describe()}: $ {' '.join(argv)}")
    # The compose CLI talks to the terminal itself (progress, tables, log colours, Ctrl-C).
    code = subprocess.call(argv)
    if args.action in ("up", "down"):
        status = "changed" if code == 0 else "failed"
        reporter.step(HOST, status, f"compose-{args.action}", stack,
                      "" if code == 0 else f"{cli.describe()} exited {code}", argv)
        reporter.recap()
    return code
