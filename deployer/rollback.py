"""Roll a stack back: redeploy a stored revision (whole stack), or Swarm's previous spec of one
service.

``redeploy`` is the one code path for putting a stored revision back: the automatic rollback of a
failed push and ``deployer rollback [--to-revision N]`` both use it. A revision's file names its
secrets and configs by content hash (external objects); a push prunes superseded secrets, and
``remove`` deletes them all, so before redeploying an old revision ``missing_objects`` finds the
ones that are gone and ``recreate_objects`` creates them again from what the user supplies now
(values and ``GOOGLE_API_KEY``) — only where the content hashes to the very name the revision
wants. Values are never stored, so anything else is refused before a single change is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from deployer.converge import wait_converged
from deployer.engine import objects
from deployer.errors import DeployError
from deployer.operations import SECRET_KEY_LABEL, SECRET_STACK_LABEL, deploy_argv, services_in
from deployer.state import Revision, StackState

if TYPE_CHECKING:
    import docker

    from deployer.connectors.base import Connector
    from deployer.swarm import ServiceState, SwarmSnapshot
    from deployer.values import StackValues

ProgressCallback = Callable[["ServiceState"], None]

#: Revision outcomes a whole-stack rollback may return to (a failed or interrupted push is not).
ROLLBACK_OUTCOMES = frozenset({"deployed"})


def revision_argv(state: StackState, number: int, resolve_image: str) -> list[str]:
    """``docker stack deploy`` of revision ``number``'s file, already on the manager."""
    return deploy_argv(state.stack, f"{state.revision_dir(number)}/stack.yml", resolve_image)


def redeploy(
    conn: Connector,
    state: StackState,
    revision: Revision,
    argv: list[str],
    *,
    timeout: float,
    on_progress: ProgressCallback | None = None,
) -> SwarmSnapshot:
    """Run ``argv`` (from ``revision_argv``) and wait until the stack converged on it.

    Raises ``ConvergeError`` (naming the failing service) if it does not.
    """
    conn.run(argv)
    return wait_converged(
        conn.docker_client().api, state.stack, conn.host,
        expected=services_in(revision.stack_file), timeout=timeout, on_progress=on_progress,
    )


def previous_revision(state: StackState, metas: Mapping[int, Mapping[str, Any]]) -> int:
    """The revision a plain ``rollback`` returns to: the newest successfully deployed one before
    the current (or, with nothing current, e.g. after ``remove``, the newest deployed one)."""
    below = state.current if state.current is not None else state.next_revision
    candidates = [
        n for n in state.revisions
        if n < below and metas.get(n, {}).get("outcome", "deployed") in ROLLBACK_OUTCOMES
    ]
    if not candidates:
        where = f"before revision {state.current}" if state.current is not None else "at all"
        raise DeployError(
            f"stack {state.stack} has no successfully deployed revision {where} to roll back to",
            fix="see `deployer history`; roll back to a listed revision with --to-revision N",
        )
    return max(candidates)


# ---------------------------------------------------------------------------------------------
# Secrets and configs a revision needs


@dataclass(frozen=True)
class StackObject:
    """An external secret or config a stack file references by name."""

    kind: str  # "secret" | "config"
    key: str  # the name inside the stack file (the secret's base, e.g. google_api_key)
    name: str  # the Swarm object name (base + content hash)


def external_objects(stack_file: str) -> list[StackObject]:
    """The external secrets and configs declared at the top of ``stack_file``."""
    data = yaml.safe_load(stack_file) or {}
    found: list[StackObject] = []
    for section, kind in (("secrets", "secret"), ("configs", "config")):
        for key, spec in sorted((data.get(section) or {}).items()):
            if isinstance(spec, dict) and spec.get("external"):
                found.append(StackObject(kind, str(key), str(spec.get("name") or key)))
    return found


def missing_objects(
    client: docker.DockerClient, host: str, wanted: list[StackObject]
) -> list[StackObject]:
    """The ``wanted`` objects the manager does not have."""
    secrets = objects.names(client, host, "secret")
    configs = objects.names(client, host, "config")
    return [o for o in wanted if o.name not in (secrets if o.kind == "secret" else configs)]


def recreate_objects(
    client: docker.DockerClient,
    host: str,
    stack: str,
    missing: list[StackObject],
    materials: Mapping[str, str],
) -> list[StackObject]:
    """Create each missing object whose content is in ``materials`` (Swarm name -> content,
    names derived from the content hash, so a match is the very content the revision used).

    Raises ``DeployError`` listing the objects no material matches, before creating anything.
    Secret values go through the Engine API only (no file, no argv).
    """
    unmatched = [o for o in missing if o.name not in materials]
    if unmatched:
        names = ", ".join(f"{o.kind} {o.name}" for o in unmatched)
        raise DeployError(
            f"the revision needs {names}, which no longer exist on {host}, and the values and "
            "environment given now do not hold that content (its name is a hash of the "
            "content; values are never stored)",
            fix="supply the values that revision was pushed with (-f/--set, GOOGLE_API_KEY "
            "or --env-file), or roll back to a newer revision (`deployer history`)",
        )
    for obj in missing:
        labels = {SECRET_STACK_LABEL: stack}
        if obj.kind == "secret":
            labels[SECRET_KEY_LABEL] = obj.key
        objects.create(client, host, "secret" if obj.kind == "secret" else "config", obj.name,
                       materials[obj.name].encode(), labels)
    return missing


def materials(values: StackValues, env_file: str | None) -> dict[str, str]:
    """Swarm object name -> content for every secret and config the given values (and
    ``GOOGLE_API_KEY``, when set) would produce. Nothing is created or printed."""
    from deployer.errors import ConfigError
    from deployer.operations import secret_version
    from deployer.options import GOOGLE_KEY
    from deployer.push_inputs import MISSING_SECRET_PLACEHOLDER, google_api_key
    from deployer.render import secret_name, swarm_configs, swarm_secret_values

    raw = dict(swarm_secret_values(values))
    try:
        raw[GOOGLE_KEY] = google_api_key(env_file)
    except ConfigError:
        # Only needed if the revision's key is gone; then the error names it. A revision pushed
        # with --allow-missing-secret used the placeholder, which can always be recreated.
        raw[GOOGLE_KEY] = MISSING_SECRET_PLACEHOLDER
    out = {secret_name(base, secret_version(value)): value for base, value in raw.items()}
    out.update(swarm_configs(values))
    return out


# ---------------------------------------------------------------------------------------------
# One service: Swarm's previous spec


def service_rollback_argv(full_name: str) -> list[str]:
    """``docker service rollback`` without waiting (we wait on the read model, with progress)."""
    return ["docker", "service", "rollback", "--detach", full_name]
