"""Messages the dashboard's workers post, named as the events they report."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from deployer.actions.models import ModelsOverview
from deployer.swarm import SwarmEvent, SwarmSnapshot
from tui.deploy import DeployEvent, DeployResult
from tui.values_edit import ReplicasEdit


@dataclass
class ServicesRefreshed(Message):
    """A new snapshot of the stack was read, with what changed since the previous one."""

    snapshot: SwarmSnapshot
    events: list[SwarmEvent]


@dataclass
class ConnectionLost(Message):
    """The engine (or the SSH connection to the manager) stopped answering."""

    reason: str


@dataclass
class ServiceScaled(Message):
    """A scale request was accepted by the engine."""

    service: str
    replicas: int


@dataclass
class ServiceRestarted(Message):
    """A forced update (restart of every task) was accepted."""

    service: str


@dataclass
class ServiceRolledBack(Message):
    """A rollback to the previous spec was accepted."""

    service: str


@dataclass
class ServiceRemoved(Message):
    """A service was removed."""

    service: str


@dataclass
class LogLinesReceived(Message):
    """New lines are waiting in the logs buffer.

    The lines themselves stay in the shared buffer; this is only a wake-up call, so when the UI
    falls behind a burst of these collapses into one (``can_replace``) and nothing is lost.
    """

    pending: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LogLinesReceived)


@dataclass
class LogStreamEnded(Message):
    """The log readers stopped (follow off and all read, or every reader failed)."""

    errors: list[str]


@dataclass
class DeployProgressed(Message):
    """The running push reported a step, a service's progress or a detail line."""

    event: DeployEvent


@dataclass
class DeployFinished(Message):
    """The push ended (ok, changed or failed, with the reason)."""

    result: DeployResult


@dataclass
class ReplicasWritten(Message):
    """A live replica count was written to a values file, which loaded again fine."""

    edit: ReplicasEdit
    declared: dict[str, int]


@dataclass
class NodesRefreshed(Message):
    """A new snapshot for the nodes screen."""

    snapshot: SwarmSnapshot


@dataclass
class NodeAvailabilitySet(Message):
    """A node was drained or activated."""

    node: str
    availability: str


@dataclass
class ModelsRefreshed(Message):
    """A new read of the served models and the registry."""

    overview: ModelsOverview


@dataclass
class ModelPromoted(Message):
    """A model version was made the champion."""

    model: str
    version: str
