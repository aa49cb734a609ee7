"""Actions on a whole stack: remove it, or roll it back to a stored revision.

As every action: facts first (what exists, which revision), a plan that refuses bad requests
before any change, then the changes under the stack's deploy lock, each reported, one audit line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from deployer.actions.base import ActionContext, locked, record
from deployer.converge import ConvergeError
from deployer.errors import ConfigError, DeployError
from deployer.history import read_history
from deployer.remove import (
    StackObjects,
    remove_objects,
    remove_task_containers,
    stack_objects,
    stack_rm_argv,
    wait_gone,
)
from deployer.rollback import (
    ROLLBACK_OUTCOMES,
    external_objects,
    missing_objects,
    previous_revision,
    recreate_objects,
    redeploy,
    revision_argv,
)
from deployer.state import StackState, read_revision, read_state, set_current

#: Asked before volumes are deleted (the front end's prompt); False: nothing is removed.
Confirm = Callable[[str], bool]


# ---------------------------------------------------------------------------------------------
# remove


def remove(ctx: ActionContext, *, volumes: bool = False,
           confirm: Confirm | None = None) -> StackObjects:
    """Remove the stack's services and networks, its exited task containers, and the secrets
    and configs push created for it; its volumes too with ``volumes`` (after ``confirm``).

    ``ok`` and nothing changed when none of it is there. Returns what was found.
    """
    client = ctx.conn.docker_client()
    found = stack_objects(client, ctx.stack, ctx.host)
    current = read_state(ctx.conn, ctx.stack, with_services=False).current
    drop_volumes = bool(volumes and found.volumes)
    if not (found.deployed or found.secrets or found.configs or drop_volumes
            or found.containers or current is not None):
        note = f"; volume(s) kept: {', '.join(found.volumes)}" if found.volumes else ""
        ctx.events.step(ctx.host, "ok", "remove", ctx.stack, f"not deployed{note}")
        return found
    if drop_volumes and confirm is not None and not confirm(
        f"[{ctx.host}] remove stack {ctx.stack} and its volumes {', '.join(found.volumes)} "
        "(their data is lost)?"
    ):
        ctx.events.step(ctx.host, "skipped", "remove", ctx.stack,
                        "not confirmed: nothing removed")
        return found
    with locked(ctx) as state:
        _remove_found(ctx, state, found, drop_volumes)
    return found


def _remove_found(ctx: ActionContext, state: StackState, found: StackObjects,
                  drop_volumes: bool) -> None:
    client = ctx.conn.docker_client()
    host, events = ctx.host, ctx.events
    if found.deployed:
        argv = stack_rm_argv(ctx.stack)
        ctx.conn.run(argv)
        wait_gone(client, ctx.stack, host, ctx.timeout)
        events.step(host, "changed", "stack-rm", ctx.stack,
                    f"{len(found.services)} service(s), {len(found.networks)} network(s)", argv)
    # Exited task containers (a completed job's) outlive `stack rm`: drop them before the
    # secrets, configs and volumes they reference.
    containers = remove_task_containers(client, ctx.stack, host)
    if containers:
        events.step(host, "changed", "remove-containers", ctx.stack,
                    f"{containers} exited task container(s)")
    for kind, names in (("secret", found.secrets), ("config", found.configs)):
        if not names:
            continue
        kept = remove_objects(client, host, kind, names, ctx.timeout)
        gone = [n for n in names if n not in kept]
        if gone:
            events.step(host, "changed", f"remove-{kind}s", ", ".join(gone))
        if kept:
            events.step(host, "skipped", f"remove-{kind}s", ", ".join(kept),
                        "in use by another stack (same content)")
    if drop_volumes:
        remove_objects(client, host, "volume", found.volumes, ctx.timeout)
        events.step(host, "changed", "remove-volumes", ", ".join(found.volumes))
    elif found.volumes:
        events.step(host, "skipped", "remove-volumes", ", ".join(found.volumes),
                    "kept; --volumes removes them")
    if state.current is not None:
        ctx.conn.run(["rm", "-f", f"{state.stack_dir}/current"])
    record(ctx, state, "remove", revision=state.current, volumes=drop_volumes)
    if state.current is not None:
        events.step(host, "changed", "record", ctx.stack,
                    f"current revision {state.current} -> removed")


# ---------------------------------------------------------------------------------------------
# rollback to a stored revision


#: Swarm object name -> content for the secrets/configs the values given now would create
#: (called only when the revision's objects were pruned).
Materials = Callable[[], Mapping[str, str]]
#: Puts the revision's images (ref -> image id) on the manager, or raises.
EnsureImages = Callable[[Mapping[str, str]], None]


def plan_revision(state: StackState, metas: Mapping[int, Mapping[str, Any]],
                  to_revision: int | None) -> int:
    """The revision to return to: ``to_revision``, else the previous deployed one; refuses a
    revision that is not stored or was never deployed successfully (pure)."""
    target = previous_revision(state, metas) if to_revision is None else to_revision
    if target not in metas:
        listed = ", ".join(str(n) for n in sorted(metas)) or "none"
        raise ConfigError(f"rollback: stack {state.stack} has no revision {target}",
                          fix=f"stored revisions: {listed} (`deployer history`)")
    outcome = metas[target].get("outcome", "deployed")
    if outcome not in ROLLBACK_OUTCOMES:
        raise DeployError(f"revision {target} was never deployed successfully ({outcome})",
                          fix="pick a deployed revision from `deployer history`")
    return target


def revision_images(meta: Mapping[str, Any]) -> dict[str, str]:
    """Image ref -> image id that a revision was deployed with."""
    return {str(i["ref"]): str(i["id"]) for i in (meta.get("images") or {}).values()}


def rollback(ctx: ActionContext, *, to_revision: int | None, resolve_image: str,
             materials: Materials, ensure_images: EnsureImages) -> int:
    """Redeploy a stored revision (default: the previous deployed one), recreating its pruned
    secrets/configs from ``materials``, and wait until it converged; returns its number."""
    with locked(ctx) as state:
        metas = read_history(ctx.conn, ctx.stack).metas()
        target = plan_revision(state, metas, to_revision)
        revision = read_revision(ctx.conn, state, target)
        if revision is None:
            raise DeployError(f"revision {target} has no stack file in {state.stack_dir}")
        ensure_images(revision_images(metas[target]))
        client = ctx.conn.docker_client()
        missing = missing_objects(client, ctx.host, external_objects(revision.stack_file))
        if missing:
            for obj in recreate_objects(client, ctx.host, ctx.stack, missing, materials()):
                ctx.events.step(ctx.host, "changed", f"create-{obj.kind}", obj.name, obj.key)
        argv = revision_argv(state, target, resolve_image)
        try:
            if ctx.wait:
                redeploy(ctx.conn, state, revision, argv, timeout=ctx.timeout,
                         on_progress=lambda svc: ctx.events.progress(ctx.host, svc))
            else:
                ctx.conn.run(argv)
        except ConvergeError as exc:
            ctx.events.step(ctx.host, "failed", "rollback", f"revision {target}", exc.message,
                            argv)
            record(ctx, state, "rollback-failed", revision=target, error=exc.message)
            raise
        set_current(ctx.conn, state, target)
        record(ctx, state, "rollback", revision=target, from_revision=state.current)
        ctx.events.step(ctx.host, "changed", "rollback", f"revision {target}",
                        f"from revision {state.current}" if state.current else "", argv)
    return target
