"""Wait for a stack to converge: every service at its desired replicas, running and healthy, every
job completed — or detect that it will not, and say which service failed and why.

Polls the shared Swarm read model (``deployer.swarm``: services + tasks, two API calls per poll)
instead of ``docker stack deploy --detach=false``, which waits service by service with a 5 s
stability window each.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta

from deployer.engine.client import docker_errors
from deployer.errors import DeployError
from deployer.swarm import ServiceState, SwarmApi, SwarmSnapshot, TaskState, read_snapshot

#: Update states meaning Swarm refused the new spec (its own rollback ran or the update paused).
FAILED_UPDATE_STATES = frozenset({"rollback_started", "rollback_paused", "rollback_completed",
                                  "paused"})
#: Failed attempts of one service (since it was last updated) after which we stop waiting.
MAX_FAILED_TASKS = 2
#: Tasks may be stamped slightly before the service's UpdatedAt (clock granularity).
_SKEW = timedelta(seconds=1)


@dataclass(frozen=True)
class Failure:
    """Why a service did not converge."""

    service: str
    reason: str
    task_error: str = ""
    exit_code: int | None = None

    def describe(self) -> str:
        text = f"{self.service}: {self.reason}"
        if self.task_error:
            text += f"; task error: {self.task_error}"
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
    latest = max(failed, key=lambda t: t.timestamp, default=None)
    error = (latest.error or latest.message) if latest else ""
    code = latest.exit_code if latest else None
    if service.update_state in FAILED_UPDATE_STATES:
        reason = f"update failed, Swarm state {service.update_state}"
        if service.update_message:
            reason += f" ({service.update_message})"
        return Failure(service.short_name, reason, error, code)
    if len(failed) >= MAX_FAILED_TASKS:
        return Failure(service.short_name, f"{len(failed)} task(s) failed", error, code)
    if service.is_job and service.health == "failed" and failed:
        return Failure(service.short_name, "job failed", error, code)
    return None


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
) -> SwarmSnapshot:
    """Poll until every service of ``stack`` converged; return the final snapshot.

    ``expected`` names services that must exist (short names) before it can count as converged.
    ``rolled_back`` names services whose rollback was requested (``docker service rollback``):
    for them a completed rollback is the goal, not a refused update.
    Raises ``DeployError`` naming the failing service, its task error and exit code, or the
    services still pending at the timeout. ``on_progress`` gets each service whose line changed.
    """
    deadline = time.monotonic() + timeout
    want = set(expected)
    shown: dict[str, str] = {}
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
        for service in services:
            failure = failure_of(snapshot, service)
            if failure:
                raise ConvergeError(
                    f"stack {stack} did not converge: {failure.describe()}",
                    failure=failure,
                    fix=f"see `deployer logs {failure.service}` and the task error above",
                )
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
