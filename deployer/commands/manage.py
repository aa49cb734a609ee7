"""Day-two commands on a deployed stack: `status`, `scale`, `logs`, `remove`, `rollback`,
`history`. Argument parsing and output here; the work is in deployer.scale / logs / remove /
rollback / history and the shared push machinery (lock, audit, convergence wait)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deployer.commands.render import add_values_arguments
from deployer.commands.targets import (
    add_stack_argument,
    add_target_arguments,
    hosts_of,
    load_host_values,
    local_engine,
    open_connector,
)
from deployer.connectors.base import Connector
from deployer.converge import ConvergeError, wait_converged
from deployer.engine.client import docker_errors
from deployer.errors import CommandError, ConfigError, ConnectError, DeployError, MlopsError
from deployer.history import read_history, table
from deployer.inventory import Host
from deployer.logs import LogOptions, LogReaders, check_since
from deployer.operations import DEFAULT_RESOLVE_IMAGE, RESOLVE_IMAGE_CHOICES
from deployer.output import Reporter
from deployer.state import (
    DeployLock,
    StackState,
    audit,
    read_revision,
    read_state,
    set_current,
)
from deployer.swarm import SwarmSnapshot, read_snapshot

COLUMNS = ("SERVICE", "REPLICAS", "IMAGE", "PORTS", "UPDATE", "HEALTH")

#: Exit code of a run stopped with Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED = 130


def register(subparsers: Any) -> None:
    """Add `status`, `scale`, `logs`, `remove`, `rollback` and `history`."""
    p = subparsers.add_parser("status", help="services of the stack: replicas, image, health")
    _common(p)
    p.set_defaults(func=run_status)

    p = subparsers.add_parser(
        "scale", help="set replica counts and wait until converged",
        description="Scale services of the deployed stack (SERVICE=N, N >= 0) and wait until "
        "the stack has converged. Says so when the result differs from the pushed values.",
    )
    p.add_argument("requests", nargs="+", metavar="SERVICE=N")
    _common(p, mutating=True)
    p.set_defaults(func=run_scale)

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
    _common(p, values_short=False)
    p.set_defaults(func=run_logs)

    p = subparsers.add_parser(
        "remove", help="remove the stack (volumes kept unless --volumes)",
        description="Remove the stack's services and networks, and the secrets and configs "
        "push created for it; wait until they are gone. Volumes (data) are kept unless "
        "--volumes, which asks for confirmation (or --yes).",
    )
    p.add_argument("--volumes", action="store_true",
                   help="also remove the stack's volumes (their data is lost)")
    p.add_argument("-y", "--yes", action="store_true", help="confirm without asking")
    _common(p, mutating=True)
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
    _common(p, mutating=True)
    p.set_defaults(func=run_rollback)

    p = subparsers.add_parser("history", help="the stack's revisions (time, who, values, images)")
    _common(p)
    p.set_defaults(func=run_history)


def _common(parser: argparse.ArgumentParser, *, mutating: bool = False,
            values_short: bool = True) -> None:
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
    """``--stack``, else ``stack.name`` of the values (defaults < host overlays < -f < --set)."""
    if args.stack:
        return str(args.stack)
    return load_host_values(host, args).stack.name


Action = Callable[[Connector, Host, str], None]


def _each_host(args: argparse.Namespace, reporter: Reporter, command: str,
               action: Action) -> int:
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
            action(conn, host, stack)
        except MlopsError as exc:
            reporter.step(conn.host, "failed", command, stack)
            reporter.text(exc.render())
            errors.append(exc)
        finally:
            conn.close()
    reporter.recap()
    code = reporter.exit_code()
    if errors and code != 4:
        code = errors[-1].exit_code
    return code


@contextlib.contextmanager
def _locked(conn: Connector, stack: str, args: argparse.Namespace,
            reporter: Reporter) -> Iterator[StackState]:
    """Hold the stack's deploy lock (as push does); yields the state read under it."""
    lock = DeployLock(conn, read_state(conn, stack, with_services=False),
                      break_lock=args.break_lock).acquire()
    try:
        state = read_state(conn, stack, with_services=False)
        if lock.stale:
            reporter.info(f"took over the lock of {lock.stale.describe()}")
            audit(conn, state, "break-lock", holder=lock.stale.holder, since=lock.stale.since)
        yield state
    finally:
        lock.release()


def _snapshot(conn: Connector, stack: str) -> SwarmSnapshot:
    with docker_errors(conn.host):
        return read_snapshot(conn.docker_client().api, stack, include_nodes=False)


def _deployed(conn: Connector, stack: str) -> SwarmSnapshot:
    snapshot = _snapshot(conn, stack)
    if not snapshot.services:
        raise DeployError(f"stack {stack} is not deployed on {conn.host}",
                          fix="check the name (--stack) and the host, or `deployer push` it")
    return snapshot


def _settled_rollbacks(snapshot: SwarmSnapshot) -> set[str]:
    """Services whose last change was a rollback that already completed (e.g. an earlier
    `rollback SERVICE`): the state lingers until their next update and is no failure of ours."""
    return {s.short_name for s in snapshot.services if s.update_state == "rollback_completed"}


def _wait(conn: Connector, stack: str, args: argparse.Namespace, reporter: Reporter,
          before: SwarmSnapshot, rolled_back: set[str] | None = None) -> None:
    wait_converged(conn.docker_client().api, stack, conn.host, timeout=args.timeout,
                   on_progress=lambda svc: reporter.progress(conn.host, svc),
                   rolled_back=_settled_rollbacks(before) | (rolled_back or set()))


# ---------------------------------------------------------------------------------------------
# status


def run_status(args: argparse.Namespace) -> int:
    for host in hosts_of(args):
        stack = stack_name(host, args)
        with open_connector(host) as conn:
            snapshot = _snapshot(conn, stack)
            print(f"[{conn.host}] stack {stack}: {len(snapshot.services)} service(s)")
            rows = [
                (s.short_name, s.replicas_text, s.image, ", ".join(str(p) for p in s.ports),
                 s.update_state or "-", s.health)
                for s in snapshot.services
            ]
            print(table(rows, COLUMNS))
    return 0


# ---------------------------------------------------------------------------------------------
# scale


def run_scale(args: argparse.Namespace) -> int:
    from deployer.scale import (
        declared_replicas,
        drift_notes,
        parse_requests,
        plan_scale,
        scale_argv,
    )

    requests = parse_requests(args.requests)  # bad input fails before any connection
    reporter = Reporter(verbose=args.verbose)

    def scale(conn: Connector, host: Host, stack: str) -> None:
        before = _deployed(conn, stack)
        changes = plan_scale(before, requests)
        for change in changes:
            if not change.changed:
                reporter.step(conn.host, "ok", "scale", change.service,
                              f"{change.new} replica(s)")
        todo = [c for c in changes if c.changed]
        if not todo:
            return
        with _locked(conn, stack, args, reporter) as state:
            argv = scale_argv(stack, todo)
            conn.run(argv)
            counts = {c.service: c.new for c in todo}
            try:
                _wait(conn, stack, args, reporter, before)
            except ConvergeError as exc:
                audit(conn, state, "scale-failed", services=counts, error=exc.message)
                raise
            for change in todo:
                reporter.step(conn.host, "changed", "scale", change.service,
                              f"{change.old} -> {change.new}", argv)
            audit(conn, state, "scale", services=counts, revision=state.current)
            revision = None if state.current is None else read_revision(conn, state,
                                                                         state.current)
            declared = declared_replicas(revision.stack_file if revision else None)
            for note in drift_notes(declared, todo):
                reporter.info(note)

    return _each_host(args, reporter, "scale", scale)


# ---------------------------------------------------------------------------------------------
# logs


def run_logs(args: argparse.Namespace) -> int:
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
        snapshot = _deployed(conn, stack)
        if args.service:
            service = snapshot.service(args.service)
            if service is None:
                known = ", ".join(s.short_name for s in snapshot.services)
                raise ConfigError(f"logs: stack {stack} has no service {args.service!r}",
                                  fix=f"its services: {known}")
            names = [service.short_name]
            # One service: prefixes only tell its replicas apart.
            prefix = service.replicas_desired > 1
        else:
            names = [s.short_name for s in snapshot.services]
            prefix = True
        readers = LogReaders(conn, stack, names, opts)
        if args.verbose:
            for argv in readers.argvs:
                print(f"$ {' '.join(argv)}", file=sys.stderr, flush=True)

        def emit(line: Any) -> None:
            print(line.render(prefix=prefix, timestamps=opts.timestamps), flush=True)

        try:
            readers.stream(emit)
        except KeyboardInterrupt:
            # Ctrl-C is how a follow ends: stop the readers; closing the connection (finally)
            # ends their commands. No traceback, the shell's exit code for SIGINT.
            readers.stop()
            return INTERRUPTED
        for error in readers.errors:
            print(f"logs: {error}", file=sys.stderr)
        return 1 if readers.errors else 0
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
    from deployer.remove import (
        remove_objects,
        remove_task_containers,
        stack_objects,
        stack_rm_argv,
        wait_gone,
    )

    if args.volumes and not args.yes and not sys.stdin.isatty():
        raise ConfigError(
            "remove --volumes deletes the stack's volumes and their data; it asks for "
            "confirmation, but there is no terminal to ask on",
            fix="rerun with --volumes --yes to confirm (or without --volumes to keep the data)",
        )
    reporter = Reporter(verbose=args.verbose)

    def remove(conn: Connector, host: Host, stack: str) -> None:
        client = conn.docker_client()
        found = stack_objects(client, stack, conn.host)
        current = read_state(conn, stack, with_services=False).current
        drop_volumes = bool(args.volumes and found.volumes)
        if not (found.deployed or found.secrets or found.configs or drop_volumes
                or found.containers or current is not None):
            note = f"; volume(s) kept: {', '.join(found.volumes)}" if found.volumes else ""
            reporter.step(conn.host, "ok", "remove", stack, f"not deployed{note}")
            return
        if drop_volumes and not args.yes and not _confirm(
            f"[{conn.host}] remove stack {stack} and its volumes {', '.join(found.volumes)} "
            "(their data is lost)?"
        ):
            reporter.step(conn.host, "skipped", "remove", stack, "not confirmed: nothing removed")
            return
        with _locked(conn, stack, args, reporter) as state:
            if found.deployed:
                argv = stack_rm_argv(stack)
                conn.run(argv)
                wait_gone(client, stack, conn.host, args.timeout)
                reporter.step(conn.host, "changed", "stack-rm", stack,
                              f"{len(found.services)} service(s), {len(found.networks)} "
                              "network(s)", argv)
            # Exited task containers (a completed job's) outlive `stack rm`: drop them before
            # the secrets, configs and volumes they reference.
            containers = remove_task_containers(client, stack, conn.host)
            if containers:
                reporter.step(conn.host, "changed", "remove-containers", stack,
                              f"{containers} exited task container(s)")
            for kind, names in (("secret", found.secrets), ("config", found.configs)):
                if not names:
                    continue
                kept = remove_objects(client, conn.host, kind, names, args.timeout)
                gone = [n for n in names if n not in kept]
                if gone:
                    reporter.step(conn.host, "changed", f"remove-{kind}s", ", ".join(gone))
                if kept:
                    reporter.step(conn.host, "skipped", f"remove-{kind}s", ", ".join(kept),
                                  "in use by another stack (same content)")
            if drop_volumes:
                remove_objects(client, conn.host, "volume", found.volumes, args.timeout)
                reporter.step(conn.host, "changed", "remove-volumes", ", ".join(found.volumes))
            elif found.volumes:
                reporter.step(conn.host, "skipped", "remove-volumes", ", ".join(found.volumes),
                              "kept; --volumes removes them")
            if state.current is not None:
                conn.run(["rm", "-f", f"{state.stack_dir}/current"])
            audit(conn, state, "remove", revision=state.current, volumes=drop_volumes)
            if state.current is not None:
                reporter.step(conn.host, "changed", "record", stack,
                              f"current revision {state.current} -> removed")

    return _each_host(args, reporter, "remove", remove)


# ---------------------------------------------------------------------------------------------
# rollback


def run_rollback(args: argparse.Namespace) -> int:
    if args.service and args.to_revision is not None:
        raise ConfigError("rollback: give SERVICE or --to-revision N, not both",
                          fix="SERVICE rolls one service back to Swarm's previous spec; "
                          "--to-revision redeploys a whole stored revision")
    reporter = Reporter(verbose=args.verbose)
    action = _rollback_service if args.service else _rollback_stack
    return _each_host(args, reporter, "rollback",
                      lambda conn, host, stack: action(conn, host, stack, args, reporter))


def _rollback_service(conn: Connector, host: Host, stack: str, args: argparse.Namespace,
                      reporter: Reporter) -> None:
    from deployer.rollback import service_rollback_argv

    snapshot = _deployed(conn, stack)
    service = snapshot.service(args.service)
    if service is None:
        known = ", ".join(s.short_name for s in snapshot.services)
        raise ConfigError(f"rollback: stack {stack} has no service {args.service!r}",
                          fix=f"its services: {known}")
    with _locked(conn, stack, args, reporter) as state:
        argv = service_rollback_argv(service.name)
        try:
            conn.run(argv)
        except CommandError as exc:
            if "previous spec" in exc.stderr:
                raise DeployError(f"{service.short_name} has no previous spec to roll back to "
                                  "(it was never updated)") from exc
            raise
        try:
            _wait(conn, stack, args, reporter, snapshot, {service.short_name})
        except ConvergeError as exc:
            audit(conn, state, "rollback-service-failed", service=service.short_name,
                  error=exc.message)
            raise
        reporter.step(conn.host, "changed", "rollback", service.short_name,
                      "Swarm's previous spec", argv)
        audit(conn, state, "rollback-service", service=service.short_name,
              revision=state.current)
        reporter.info(f"{service.short_name} now differs from revision {state.current}: the "
                      "next push that changes anything redeploys the values' spec "
                      "(`deployer push --force` does it now)")


def _rollback_stack(conn: Connector, host: Host, stack: str, args: argparse.Namespace,
                    reporter: Reporter) -> None:
    from deployer.rollback import (
        ROLLBACK_OUTCOMES,
        external_objects,
        materials,
        missing_objects,
        previous_revision,
        recreate_objects,
        redeploy,
        revision_argv,
    )

    with _locked(conn, stack, args, reporter) as state:
        metas = read_history(conn, stack).metas()
        target = args.to_revision
        if target is None:
            target = previous_revision(state, metas)
        elif target not in metas:
            listed = ", ".join(str(n) for n in sorted(metas)) or "none"
            raise ConfigError(f"rollback: stack {stack} has no revision {target} on {conn.host}",
                              fix=f"stored revisions: {listed} (`deployer history`)")
        outcome = metas[target].get("outcome", "deployed")
        if outcome not in ROLLBACK_OUTCOMES:
            raise DeployError(f"revision {target} was never deployed successfully ({outcome})",
                              fix="pick a deployed revision from `deployer history`")
        revision = read_revision(conn, state, target)
        if revision is None:
            raise DeployError(f"revision {target} has no stack file in {state.stack_dir}")
        client = conn.docker_client()
        _ensure_images(conn, metas[target], reporter)
        missing = missing_objects(client, conn.host, external_objects(revision.stack_file))
        if missing:
            found = materials(load_host_values(host, args), args.env_file)
            for obj in recreate_objects(client, conn.host, stack, missing, found):
                reporter.step(conn.host, "changed", f"create-{obj.kind}", obj.name, obj.key)
        argv = revision_argv(state, target, args.resolve_image)
        try:
            redeploy(conn, state, revision, argv, timeout=args.timeout,
                     on_progress=lambda svc: reporter.progress(conn.host, svc))
        except ConvergeError as exc:
            reporter.step(conn.host, "failed", "rollback", f"revision {target}", exc.message,
                          argv)
            audit(conn, state, "rollback-failed", revision=target, error=exc.message)
            raise
        set_current(conn, state, target)
        audit(conn, state, "rollback", revision=target, from_revision=state.current)
        reporter.step(conn.host, "changed", "rollback", f"revision {target}",
                      f"from revision {state.current}" if state.current else "", argv)


def _ensure_images(conn: Connector, meta: Any, reporter: Reporter) -> None:
    """The revision's images must be on the manager (pinned by ID); ship those it lacks from
    the local engine, as push does, or refuse before deploying."""
    from deployer import facts, ship

    images = {str(i["ref"]): str(i["id"]) for i in (meta.get("images") or {}).values()}
    client = conn.docker_client()
    for ref, image_id in sorted(images.items()):
        if facts.image_id(client, ref, conn.host) == image_id:
            continue
        local = local_engine(conn)
        if local is None or facts.image_id(local, image_id, "local") is None:
            raise DeployError(f"image {ref} ({image_id[:19]}) of that revision is on neither "
                              f"{conn.host} nor the local engine",
                              fix="rebuild or `docker load` it, or pick another revision")
        ship.ensure_local_tag(local, image_id, ref)
        if conn.host != "local":
            ship.ship_image(local, conn, ref)
        reporter.step(conn.host, "changed", "ship-image", ref, image_id[:19])


# ---------------------------------------------------------------------------------------------
# history


def run_history(args: argparse.Namespace) -> int:
    for host in hosts_of(args):
        stack = stack_name(host, args)
        with open_connector(host) as conn:
            history = read_history(conn, stack)
            current = history.current if history.current is not None else "none"
            print(f"[{conn.host}] stack {stack}: {len(history.revisions)} revision(s), "
                  f"current: {current}")
            if history.revisions:
                print(table([r.row() for r in history.revisions]))
    return 0
