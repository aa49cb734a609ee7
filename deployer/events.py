"""The event sink every action and the push machinery report to.

``deployer.output.Reporter`` prints the events; the dashboard's reporter posts them as messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from deployer.swarm import ServiceState


class Events(Protocol):
    """Where an action reports what it does (``deployer.output.Reporter`` prints it; the
    dashboard's reporter posts it as messages)."""

    def step(self, host: str, status: str, kind: str, target: str, detail: str = "",
             argv: Sequence[str] = ()) -> None:
        """One step: ``ok`` / ``changed`` / ``failed`` / ``skipped``."""

    def info(self, text: str, *, level: int = 0) -> None:
        """A detail line."""

    def progress(self, host: str, service: ServiceState) -> None:
        """A service's state while the action waits for convergence."""

    def text(self, text: str) -> None:
        """Verbatim text (a diff, a table)."""
