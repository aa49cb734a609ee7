"""A stack's stored revisions with their meta (``deployer history``, and what ``rollback`` picks
from), read from the manager's state directory in one remote command."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployer.connectors.base import Connector

# $1: the stack name (an argument, never formatted into the script).
_HISTORY_SCRIPT = r"""
s="${MLOPS_STATE_DIR:-$HOME/.mlops}/$1"
echo "current=$(cat "$s/current" 2>/dev/null)"
for d in "$s"/revisions/*/; do
  [ -d "$d" ] || continue
  echo "--revision $(basename "$d")"
  cat "$d/meta.json" 2>/dev/null
done
"""

COLUMNS = ("REV", "", "TIME", "WHO", "VALUES", "IMAGES", "OUTCOME")


@dataclass(frozen=True)
class RevisionInfo:
    """One stored revision as ``history`` shows it."""

    number: int
    meta: Mapping[str, Any]
    current: bool

    @property
    def outcome(self) -> str:
        return str(self.meta.get("outcome") or "unknown")

    def row(self) -> tuple[str, ...]:
        images = self.meta.get("images") or {}
        refs = sorted({str(i.get("ref", "?")) for i in images.values() if isinstance(i, dict)})
        return (
            str(self.number),
            "*" if self.current else "",
            str(self.meta.get("when") or "?"),
            str(self.meta.get("who") or "?"),
            str(self.meta.get("values_hash") or "?")[:12],
            ", ".join(refs) or "-",
            self.outcome,
        )


@dataclass(frozen=True)
class History:
    stack: str
    current: int | None
    revisions: tuple[RevisionInfo, ...]

    def metas(self) -> dict[int, Mapping[str, Any]]:
        return {r.number: r.meta for r in self.revisions}


def parse_history(stack: str, output: str) -> History:
    """Parse the history script's output (pure; tests feed it text)."""
    head, *blocks = output.split("--revision ")
    current_text = head.strip().removeprefix("current=").strip()
    current = int(current_text) if current_text.isdigit() else None
    revisions = []
    for block in blocks:
        number_text, _, body = block.partition("\n")
        if not number_text.strip().isdigit():
            continue
        number = int(number_text.strip())
        try:
            meta = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError:
            meta = {"outcome": "unreadable meta.json"}
        revisions.append(RevisionInfo(number, meta, number == current))
    return History(stack, current, tuple(sorted(revisions, key=lambda r: r.number)))


def read_history(conn: Connector, stack: str) -> History:
    """Every revision of ``stack`` on the manager, with its meta (one remote command)."""
    result = conn.run(["sh", "-c", _HISTORY_SCRIPT, "mlops-history", stack])
    return parse_history(stack, result.stdout)


def table(rows: Sequence[tuple[str, ...]], columns: Sequence[str] = COLUMNS) -> str:
    """Left-aligned columns, two spaces apart."""
    all_rows = [tuple(columns), *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in all_rows
    )
