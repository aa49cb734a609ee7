"""Replica drift: where the live replica count differs from what the values files declare."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from deployer.swarm import ServiceState


def declared_replicas(files: Sequence[Path], sets: Sequence[str] = ()) -> dict[str, int]:
    """Replica counts per service name from the values files (defaults < files < sets).

    Raises the values loader's ``ValuesError`` for a bad file (shown to the user at start-up).
    """
    from deployer.values import load_values

    values = load_values(files, sets)
    return {name: int(svc.replicas) for name, svc in values.services.by_name().items()}


def replica_drift(
    services: Iterable[ServiceState], declared: Mapping[str, int] | None
) -> dict[str, int]:
    """Short service name -> declared replicas, for replicated services whose live desired
    count differs from the declaration (someone scaled by hand, or the file changed)."""
    if not declared:
        return {}
    return {
        svc.short_name: declared[svc.short_name]
        for svc in services
        if svc.mode == "replicated"
        and svc.short_name in declared
        and svc.replicas_desired != declared[svc.short_name]
    }
