"""Deploying from the dashboard: what a push reports, as plain data the screens can show.

The deployer's ``Pusher`` reports through a ``Reporter``; :class:`DashboardReporter` turns each
report into a :class:`DeployEvent` handed to a callback (the backend's worker posts them as
messages) instead of printing. Pure code: no Docker here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from deployer.output import Reporter
from deployer.swarm import ServiceState

Outcome = Literal["ok", "changed", "failed"]


@dataclass(frozen=True, slots=True)
class StepReported:
    """One step of the push: ``changed`` / ``ok`` / ``failed`` with its target and detail."""

    status: str
    kind: str
    target: str
    detail: str = ""

    def describe(self, *, check: bool = False) -> str:
        """``changed: stack-deploy tui2-x  (detail)`` (``would change`` in check mode)."""
        status = "would change" if check and self.status == "changed" else self.status
        text = f"{status}: {self.kind} {self.target}"
        return f"{text}  ({self.detail})" if self.detail else text


@dataclass(frozen=True, slots=True)
class ServiceProgressed:
    """A service's state while the push waits for the stack to converge."""

    service: str
    replicas: str
    health: str
    update_state: str
    converged: bool


@dataclass(frozen=True, slots=True)
class InfoReported:
    """A detail line (images sent, plan changes, a diff)."""

    text: str


DeployEvent = StepReported | ServiceProgressed | InfoReported


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """What to deploy: the stack the dashboard shows, from the values it was started with."""

    stack: str | None
    values_files: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    check: bool = False


@dataclass(frozen=True, slots=True)
class DeployResult:
    """How a push ended: ``ok`` (nothing to do), ``changed`` or ``failed`` and why."""

    outcome: Outcome
    stack: str
    host: str
    check: bool
    reason: str = ""
    steps: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line for the toast."""
        if self.outcome == "failed":
            return f"{self.stack} on {self.host}: failed: {self.reason}"
        if self.check:
            if self.outcome == "ok":
                return f"{self.stack} on {self.host}: ok, nothing would change ({self.reason})"
            return (
                f"{self.stack} on {self.host}: {len(self.steps)} step(s) would run: "
                + ", ".join(self.steps)
            )
        if self.outcome == "ok":
            return f"{self.stack} on {self.host}: ok ({self.reason})"
        return f"{self.stack} on {self.host}: changed ({self.reason})"


class DashboardReporter(Reporter):
    """A ``Reporter`` that hands every report to ``emit`` instead of printing it.

    The counts (ok/changed/failed per host) are kept as the base class keeps them, so the
    outcome is read the same way the CLI's recap reads it.
    """

    def __init__(self, emit: Callable[[DeployEvent], object], *, check: bool = False) -> None:
        super().__init__(verbose=1, color=False, check=check)
        self._emit = emit
        self.steps: list[StepReported] = []

    def step(
        self,
        host: str,
        status: str,
        kind: str,
        target: str,
        detail: str = "",
        argv: Sequence[str] = (),
    ) -> None:
        # argv is not shown: the dashboard shows what changed, the CLI's -v shows commands.
        self.counts.setdefault(host, Counter())[status] += 1
        event = StepReported(status, kind, target, detail)
        self.steps.append(event)
        self._emit(event)

    def info(self, text: str, *, level: int = 0) -> None:
        self._emit(InfoReported(text))

    def text(self, text: str) -> None:
        for line in text.splitlines():
            self._emit(InfoReported(line))

    def progress(self, host: str, service: ServiceState) -> None:
        self._emit(
            ServiceProgressed(
                service=service.short_name,
                replicas=service.replicas_text,
                health=service.health,
                update_state=service.update_state or "",
                converged=service.converged,
            )
        )

    def recap(self) -> None:
        return None
