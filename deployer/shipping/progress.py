"""Layer and byte counts out of the engines' JSON progress streams (push and pull)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer.errors import DeployError

#: Statuses that end a layer in a pull / push stream.
_PULLED = ("Pull complete",)
_PULL_HAD = ("Already exists",)
_PUSHED = ("Pushed",)
_PUSH_HAD = ("Layer already exists", "Mounted from")


@dataclass
class LayerStats:
    """What one push or pull moved: layers transferred vs already there, bytes of the former."""

    moved: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    bytes: dict[str, int] = field(default_factory=dict)  # layer -> total bytes seen
    digest: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes[layer] for layer in self.moved if layer in self.bytes)

    @property
    def layers(self) -> int:
        return len(self.moved | self.present)


class StreamError(DeployError):
    """The engine reported an error in the middle of a push or pull."""


def follow(events: Iterable[Mapping[str, Any]], *, pull: bool,
           on_event: Callable[[LayerStats], None] | None = None) -> LayerStats:
    """Consume a decoded push/pull stream; raise ``StreamError`` with the engine's message."""
    stats = LayerStats()
    done, had = (_PULLED, _PULL_HAD) if pull else (_PUSHED, _PUSH_HAD)
    for event in events:
        if "error" in event or "errorDetail" in event:
            detail = event.get("errorDetail") or {}
            raise StreamError(str(detail.get("message") or event.get("error")))
        status = str(event.get("status") or "")
        layer = str(event.get("id") or "")
        total = (event.get("progressDetail") or {}).get("total")
        if layer and isinstance(total, int) and total > 0:
            stats.bytes[layer] = max(stats.bytes.get(layer, 0), total)
        if status.startswith(done):
            stats.moved.add(layer)
        elif status.startswith(had):
            stats.present.add(layer)
        if status.startswith("Digest: "):
            stats.digest = status.removeprefix("Digest: ").strip()
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            stats.digest = str(aux["Digest"])
        if on_event is not None:
            on_event(stats)
    return stats


def human(n: int) -> str:
    """``1.2 MB`` style (decimal units, as the engines print them)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
