"""Changes between two snapshots: the dashboard's events feed, at no API cost (the engine's
event stream has no task events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from deployer.swarm.model import EventKind, SwarmSnapshot


@dataclass(frozen=True, slots=True)
class SwarmEvent:
    """Something that changed between two snapshots."""

    kind: EventKind
    service: str
    detail: str
    at: datetime


def diff_snapshots(old: SwarmSnapshot | None, new: SwarmSnapshot) -> list[SwarmEvent]:
    """What changed from ``old`` to ``new``: services created, updated, removed; tasks failed.

    With no ``old`` (first refresh), nothing is reported as new except task failures that are
    not older than the previous refresh would have been — i.e. nothing at all.
    """
    if old is None:
        return []
    events: list[SwarmEvent] = []
    before = {s.id: s for s in old.services}
    after = {s.id: s for s in new.services}
    for sid, svc in after.items():
        prev = before.get(sid)
        if prev is None:
            events.append(SwarmEvent("service-created", svc.short_name, svc.image, svc.created_at))
        elif svc.version != prev.version:
            detail = svc.image if svc.image != prev.image else "spec updated"
            if svc.update_state:
                detail += f" ({svc.update_state})"
            events.append(SwarmEvent("service-updated", svc.short_name, detail, svc.updated_at))
    for sid, svc in before.items():
        if sid not in after:
            events.append(SwarmEvent("service-removed", svc.short_name, "", new.taken_at))
    old_failed = {t.id for t in old.tasks if t.is_failure}
    for task in new.tasks:
        if task.is_failure and task.id not in old_failed:
            reason = task.error or task.message
            if task.exit_code is not None:
                reason += f" (exit {task.exit_code})"
            slot = f".{task.slot}" if task.slot is not None else f"@{task.node_name}"
            events.append(
                SwarmEvent("task-failed", f"{task.service_name}{slot}", reason, task.timestamp)
            )
    return sorted(events, key=lambda e: e.at)
