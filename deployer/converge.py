"""Wait for a stack to converge: every service at its desired replicas, running and healthy, every
job completed — or detect that it will not, and say which service failed and why.

Polls the shared Swarm read model (``deployer.swarm``: services + tasks, two API calls per poll)
instead of ``docker stack deploy --detach=false``, which waits service by service with a 5 s
stability window each.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from deployer.engine.client import docker_errors
from deployer.errors import DeployError
from deployer.swarm import (
    ServiceState,
    SwarmApi,
    SwarmSnapshot,
    TaskState,
    parse_nodes,
    read_snapshot,
)

#: Update states meaning Swarm refused the new spec (its own rollback ran or the update paused).
FAILED_UPDATE_STATES = frozenset({"rollback_started", "rollback_paused", "rollback_completed",
                                  "paused"})
#: Failed attempts of one service (since it was last updated) after which we stop waiting.
MAX_FAILED_TASKS = 2
#: Tasks may be stamped slightly before the service's UpdatedAt (clock granularity).
_SKEW = timedelta(seconds=1)
#: How long a task may wait for a node before the wait gives up (seconds). Swarm keeps such a
#: task pending for ever ("no suitable node (...)": a constraint no node satisfies, max
#: replicas per node reached, no resources); a short grace lets a node that is just joining
#: or a task that is just moving settle it first.
UNSCHEDULABLE_GRACE = 8.0


@dataclass(frozen=True)
class Failure:
    """Why a service did not converge."""

    service: str
    reason: str
    task_error: str = ""
    exit_code: int | None = None
    #: The node the failing task was on (empty: not placed on any, or a one-node swarm's).
    node: str = ""

    def describe(self) -> str:
        text = f"{self.service}: {self.reason}"
        if self.task_error:
            where = f" on node {self.node}" if self.node else ""
            text += f"; task error{where}: {self.task_error}"
        if self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        return text


class ConvergeError(DeployError):
    """The stack did not converge; ``failure`` names the service (None on a timeout)."""

    def __init__(self, message: str, *, failure: Failure | None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.failure = failure


def _recent_failures(snapshot: SwarmSnapshot, service: ServiceState) -> list[TaskState]:
    since = service.updated_at - _SKEW
    return [t for t in snapshot.tasks_of(service) if t.is_failure and t.timestamp >= since]


def failure_of(snapshot: SwarmSnapshot, service: ServiceState) -> Failure | None:
    """A ``Failure`` if ``service`` has failed in ``snapshot`` (pure: tests feed snapshots)."""
    failed = _recent_failures(snapshot, service)
    if not failed and service.update_state in FAILED_UPDATE_STATES:
        # Swarm's own rollback stamps the service anew: UpdatedAt moves past the task that
        # failed the update, so that task is the latest failure of any age.
        failed = [t for t in snapshot.tasks_of(service) if t.is_failure]
    latest = max(failed, key=lambda t: t.timestamp, default=None)
    error = (latest.error or latest.message) if latest else ""
    code = latest.exit_code if latest else None
    node = _node_name(snapshot, latest) if latest else ""
    if service.update_state in FAILED_UPDATE_STATES:
        reason = f"update failed, Swarm state {service.update_state}"
        if service.update_message:
            reason += f" ({service.update_message})"
        return Failure(service.short_name, reason, error, code, node)
    if len(failed) >= MAX_FAILED_TASKS:
        rejected = [t for t in failed if t.state == "rejected"]
        reason = f"{len(failed)} task(s) failed"
        if rejected:
            # Rejected: the node could not even start it (e.g. "No such image" there).
            nodes = sorted({_node_name(snapshot, t) for t in rejected} - {""})
            reason += f" ({len(rejected)} rejected" + (
                f" by {', '.join(nodes)})" if nodes else ")")
        return Failure(service.short_name, reason, error, code, node)
    if service.is_job and service.health == "failed" and failed:
        return Failure(service.short_name, "job failed", error, code, node)
    return None


def _node_name(snapshot: SwarmSnapshot, task: TaskState) -> str:
    # Without nodes in the snapshot the task only has the node's id: say nothing then (a
    # one-node swarm, where the node is obvious).
    if not task.node_id:
        return ""
    node = snapshot.node(task.node_id) if snapshot.nodes else None
    return node.hostname if node else ""


def failure_fix(failure: Failure) -> str:
    """What to do about ``failure``, by what the task error says."""
    error = failure.task_error
    if "host-mode port already in use" in error:
        return (f"with host-mode ports a node runs one task of {failure.service} per published "
                "port: use fewer replicas than nodes, add nodes, or publish it "
                f"(services.{failure.service}.published_port) another way (swarm.publish_mode)")
    if "address already in use" in error:
        where = f"node {failure.node}" if failure.node else "the node"
        return (f"another process on {where} listens on {failure.service}'s published port: "
                "stop it (`ss -ltnp` there shows which) or set "
                f"services.{failure.service}.published_port to a free port")
    if "no suitable node" in error:
        return ("no node satisfies the service's placement: compare its constraints and "
                "max_replicas_per_node with the nodes' labels and availability "
                "(`deployer nodes`), or add nodes")
    if "No such image" in error:
        where = f"node {failure.node}" if failure.node else "that node"
        return (f"{where} lacks the image: get it onto every node that may run the service "
                "(or constrain the service to nodes that have it)")
    return f"see `deployer logs {failure.service}` and the task error above"


def unschedulable(snapshot: SwarmSnapshot, service: ServiceState) -> list[TaskState]:
    """The service's tasks Swarm cannot place: pending with "no suitable node (...)"."""
    return [t for t in snapshot.current_tasks_of(service)
            if t.state == "pending" and "no suitable node" in (t.error or t.message)]


def unschedulable_failure(service: ServiceState, task: TaskState, waited: float) -> Failure:
    """The failure of a task that found no node for ``waited`` seconds (pure)."""
    return Failure(service.short_name,
                   f"a task found no node to run on for {waited:.0f} s",
                   task.error or task.message)


def progress_line(service: ServiceState) -> str:
    """``name  1/1 healthy`` as shown while waiting."""
    state: str = service.health
    if service.updating:
        state += f", {service.update_state}"
    return f"{service.short_name:<18} {service.replicas_text:<8} {state}"


def _as_requested_rollback(service: ServiceState) -> ServiceState:
    # A rollback the user asked for: in progress while started, the goal once completed.
    if service.update_state == "rollback_started":
        return dataclasses.replace(service, update_state="updating")
    if service.update_state == "rollback_completed":
        return dataclasses.replace(service, update_state=None)
    return service


def wait_converged(
    api: SwarmApi,
    stack: str,
    host: str,
    *,
    expected: Iterable[str] = (),
    timeout: float = 300.0,
    interval: float = 0.5,
    on_progress: Callable[[ServiceState], None] | None = None,
    rolled_back: Collection[str] = (),
    unschedulable_grace: float = UNSCHEDULABLE_GRACE,
) -> SwarmSnapshot:
    """Poll until every service of ``stack`` converged; return the final snapshot.

    ``expected`` names services that must exist (short names) before it can count as converged.
    ``rolled_back`` names services whose rollback was requested (``docker service rollback``):
    for them a completed rollback is the goal, not a refused update. A task Swarm cannot place
    on any node for ``unschedulable_grace`` seconds fails the wait with Swarm's reason.
    Raises ``DeployError`` naming the failing service, its task error and exit code, or the
    services still pending at the timeout. ``on_progress`` gets each service whose line changed.
    """
    deadline = time.monotonic() + timeout
    want = set(expected)
    shown: dict[str, str] = {}
    # task id -> when this wait first saw it unplaceable (monotonic; the engine's clock may
    # differ from ours, so never the task's own timestamp).
    pending_since: dict[str, float] = {}
    while True:
        with docker_errors(host):
            snapshot = read_snapshot(api, stack, include_nodes=False)
        services = [
            _as_requested_rollback(s) if s.short_name in rolled_back else s
            for s in snapshot.services
        ]
        for service in services:
            line = progress_line(service)
            if on_progress and shown.get(service.short_name) != line:
                shown[service.short_name] = line
                on_progress(service)
        pending_since = _raise_failures(api, host, stack, snapshot, services, pending_since,
                                        unschedulable_grace)
        present = {s.short_name for s in services}
        if want <= present and services and all(s.converged for s in services):
            return snapshot
        if time.monotonic() >= deadline:
            pending = [progress_line(s) for s in services if not s.converged]
            pending += [f"{name} (not created)" for name in sorted(want - present)]
            raise ConvergeError(
                f"stack {stack} did not converge within {timeout:g} s; pending: "
                + "; ".join(pending),
                failure=None,
                fix="raise --timeout, or check the tasks with `deployer status`",
            )
        time.sleep(interval)


def _raise_failures(api: SwarmApi, host: str, stack: str, snapshot: SwarmSnapshot,
                    services: Sequence[ServiceState], pending_since: Mapping[str, float],
                    grace: float) -> dict[str, float]:
    """Raise ``ConvergeError`` for the first failing service (a failed task, or one Swarm could
    not place for ``grace`` seconds); returns the unplaceable tasks' first-seen times."""
    now = time.monotonic()
    stuck: dict[str, float] = {}
    for service in services:
        failure = failure_of(snapshot, service)
        for task in unschedulable(snapshot, service):
            stuck[task.id] = pending_since.get(task.id, now)
            if failure is None and now - stuck[task.id] >= grace:
                failure = unschedulable_failure(service, task, now - stuck[task.id])
        if failure and failure.task_error and not failure.node:
            # Name the failing task's node: the nodes cost one more API call, so they are
            # read only now, not on every poll.
            with docker_errors(host):
                nodes = parse_nodes(api.nodes())
            failure = failure_of(dataclasses.replace(snapshot, nodes=nodes), service) or (
                failure)
        if failure:
            raise ConvergeError(
                f"stack {stack} did not converge: {failure.describe()}",
                failure=failure, fix=failure_fix(failure),
            )
    return stuck
