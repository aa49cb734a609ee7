"""`deployer build`, `push` and `rebuild` (build + push): make the images, ship the stack."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from deployer.commands.build_options import add_build_options, build_options
from deployer.commands.render import add_values_arguments
from deployer.commands.targets import (
    add_target_arguments,
    hosts_of,
    load_host_values,
    open_connector,
)
from deployer.errors import ConnectError, MlopsError
from deployer.options import DEFAULT_RESOLVE_IMAGE, OPTIONAL_SECRETS, RESOLVE_IMAGE_CHOICES
from deployer.output import Reporter

if TYPE_CHECKING:
    pass


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
    parser.add_argument("--allow-missing-secret", dest="allow_missing", action="append",
                        choices=OPTIONAL_SECRETS, default=[], metavar="NAME",
                        help="deploy secret NAME blank when its value is not set (google_api_key:"
                        " the stack runs, the LLM tab says no key is configured)")
    parser.add_argument("--break-lock", action="store_true",
                        help="take the stack's deploy lock even if another run holds it")
    parser.add_argument("--force", action="store_true",
                        help="deploy even if nothing changed")
    parser.add_argument("--no-rollback", dest="rollback", action="store_false",
                        help="on failure, leave the failed revision deployed")


def add_build_arguments(parser: argparse.ArgumentParser, *, with_values: bool = True) -> None:
    """SERVICE... and the build options (shared by `build` and `rebuild`)."""
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="services to build (default: every service the values build)")
    if with_values:
        add_values_arguments(parser)
    add_build_options(parser)


def register(subparsers: Any) -> None:
    """Add the `build`, `push` and `rebuild` sub-commands."""
    b = subparsers.add_parser(
        "build", help="build the service images on the local engine (skips unchanged ones)",
        description="Build each service image from services/<name> (BuildKit where the docker "
        "CLI has buildx, else the legacy builder), tagged <repo>:<content hash> and the values' "
        "image. A service whose build context, base image and arguments are unchanged is ok "
        "without building.",
    )
    add_build_arguments(b)
    b.add_argument("--push", action="store_true",
                   help="then upload the images to the values' registry (registry mode; only "
                   "the layers it lacks)")
    b.add_argument("-v", "--verbose", action="count", default=0,
                   help="show the builder's whole output and the commands")
    b.set_defaults(func=run_build)

    p = subparsers.add_parser(
        "push", help="deploy the stack to a Swarm manager (idempotent)",
        description="Render the Swarm file, ship missing images, create secrets, deploy, wait "
        "until converged; roll back on failure. Does nothing (ok) if nothing changed.",
    )
    add_push_arguments(p)
    p.set_defaults(func=run_push)

    r = subparsers.add_parser(
        "rebuild", help="build the images, then push the stack",
        description="`deployer build` then `deployer push` (with the same values and targets). "
        "Nothing is pushed if a build fails.",
    )
    add_build_arguments(r, with_values=False)
    add_push_arguments(r)
    r.set_defaults(func=run_rebuild)


def run_build(args: argparse.Namespace) -> int:
    """Build on the local engine; exit 2 when a build failed."""
    reporter = Reporter(verbose=args.verbose)
    _build(args, reporter)
    reporter.recap()
    return reporter.exit_code()


def _build(args: argparse.Namespace, reporter: Reporter) -> bool:
    """Build with the values of the command line; True when no build failed."""
    from deployer.build import Builder
    from deployer.engine.client import local_client
    from deployer.values import load_values

    values = load_values(args.values_files, args.sets,
                         allow_default_credentials=args.allow_default_credentials)
    if getattr(args, "push", False):
        from deployer.shipping.registry_mode import require_registry

        require_registry(values.registry)  # before anything is built or tagged
    options = build_options(args)
    client = local_client()
    try:
        results = Builder(client, reporter, options).build(values, args.services)
        failed = any(r.status == "failed" for r in results)
        if getattr(args, "push", False) and not failed:
            from deployer.shipping.registry_mode import publish_built

            publish_built(client, values.registry,
                          {r.service: (r.image, r.image_id) for r in results
                           if r.image and r.image_id}, reporter)
    finally:
        client.close()
    return not failed


def run_rebuild(args: argparse.Namespace) -> int:
    """Build, then (if every build succeeded) push to the targets."""
    reporter = Reporter(verbose=args.verbose, check=args.check)
    if not _build(args, reporter):
        reporter.text("not pushing: a build failed")
        reporter.recap()
        return reporter.exit_code()
    return _push(args, reporter)


def run_push(args: argparse.Namespace) -> int:
    return _push(args, Reporter(verbose=args.verbose, check=args.check))


def _push(args: argparse.Namespace, reporter: Reporter) -> int:
    from deployer.actions.base import ActionContext
    from deployer.actions.push import push
    from deployer.engine.client import local_engine
    from deployer.push_inputs import PushOptions

    options = PushOptions(
        check=args.check, diff=args.diff, resolve_image=args.resolve_image,
        timeout=args.timeout, break_lock=args.break_lock, force=args.force,
        rollback=args.rollback, env_file=args.env_file,
        allow_missing=tuple(args.allow_missing),
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
            push(ActionContext(conn, values.stack.name, reporter), values, options,
                 local=local_engine(conn))
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
