"""Recorded data: a backend over a snapshot the Engine API returned once (offline viewing, the
snapshot tests), and the recorder that writes one. Read-only: actions are refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.errors import DockerError
from deployer.logs import LogLine, parse_line
from deployer.swarm import ServiceState, SwarmSnapshot, parse_snapshot
from tui.backend import LogStream
from tui.deploy import DeployEvent, DeployRequest, DeployResult

if TYPE_CHECKING:
    import docker

    from deployer.actions.models import ModelsOverview


class ReplayBackend:
    """A fixed snapshot from a recording (``{"services": [...], "tasks": [...], "nodes": [...],
    "taken_at": "..."}`` as the Engine API returned them). Actions are refused: it is read-only.
    """

    def __init__(self, recording: Mapping[str, Any], host_label: str = "recording") -> None:
        self._recording = recording
        self._host_label = host_label

    @classmethod
    def from_file(cls, path: Path) -> ReplayBackend:
        """Load a recording written by :func:`record_snapshot`."""
        return cls(json.loads(path.read_text()), host_label=f"replay:{path.name}")

    @property
    def host_label(self) -> str:
        return self._host_label

    def snapshot(self, stack: str | None) -> SwarmSnapshot:
        rec = self._recording
        services = [
            s
            for s in rec["services"]
            if stack is None
            or (s.get("Spec", {}).get("Labels") or {}).get("com.docker.stack.namespace") == stack
        ]
        taken_at = datetime.fromisoformat(rec["taken_at"]) if rec.get("taken_at") else None
        return parse_snapshot(
            services, rec["tasks"], rec.get("nodes", []), stack=stack, taken_at=taken_at
        )

    def _refuse(self, *_: object) -> None:
        raise DockerError("this is a recording: actions are not available")

    scale = _refuse
    restart = _refuse
    rollback = _refuse
    remove = _refuse
    set_availability = _refuse
    promote = _refuse

    def models(self, stack: str | None) -> ModelsOverview:
        raise DockerError("this is a recording: it holds no models")

    def deploy(
        self, request: DeployRequest, emit: Callable[[DeployEvent], object]
    ) -> DeployResult:
        return DeployResult(
            "failed", request.stack or "?", self._host_label, request.check,
            "this is a recording: deploy is not available",
        )

    def open_logs(
        self, services: Sequence[ServiceState], *, tail: int | None, follow: bool = True
    ) -> LogStream:
        # Recorded as ``docker service logs --timestamps --no-task-ids`` printed them.
        wanted = {s.short_name: s for s in services}
        lines = [
            parse_line(raw, wanted[name].stack or "", name)
            for name, raws in self._recording.get("logs", {}).items()
            if name in wanted
            for raw in raws
        ]
        return _ListLogStream(lines)

    def close(self) -> None:
        return None


class _ListLogStream:
    def __init__(self, lines: list[LogLine]) -> None:
        self._lines = lines

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        chunk, self._lines = self._lines[:max_lines], self._lines[max_lines:]
        return chunk

    @property
    def finished(self) -> bool:
        return not self._lines

    @property
    def errors(self) -> list[str]:
        return []

    def close(self) -> None:
        self._lines = []


def record_snapshot(api: docker.APIClient, stack: str | None) -> dict[str, Any]:
    """The raw JSON a snapshot is made of, for :class:`ReplayBackend` and tests' data files."""
    from deployer.swarm import stack_filters

    filters = stack_filters(stack)
    return {
        "taken_at": datetime.now(UTC).isoformat(),
        "services": api.services(filters=filters, status=True),
        "tasks": api.tasks(filters=filters),
        "nodes": api.nodes(),
    }
