"""Ansible-like output: one line per step (ok / changed / failed / skipped), the commands with
``-v``, and a recap per host. Only this module and the command modules print."""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from deployer.swarm import ServiceState

STATUSES = ("ok", "changed", "failed", "skipped")

_COLORS = {"ok": "32", "changed": "33", "failed": "31", "skipped": "36"}


@dataclass
class Reporter:
    """Prints step results for one or more hosts and keeps the counts for the recap."""

    verbose: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    color: bool | None = None
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    check: bool = False

    def __post_init__(self) -> None:
        if self.color is None:
            self.color = self.stream.isatty()

    def _paint(self, status: str, text: str) -> str:
        if not self.color:
            return text
        return f"\033[{_COLORS.get(status, '0')}m{text}\033[0m"

    def step(
        self,
        host: str,
        status: str,
        kind: str,
        target: str,
        detail: str = "",
        argv: Sequence[str] = (),
    ) -> None:
        """One line: ``changed: [host] ship-image mlops/x:abc  (detail)``."""
        self.counts.setdefault(host, Counter())[status] += 1
        shown = "would change" if self.check and status == "changed" else status
        line = f"{shown}: [{host}] {kind} {target}"
        if detail:
            line += f"  ({detail})"
        print(self._paint(status, line), file=self.stream, flush=True)
        if self.verbose and argv:
            print(f"    $ {shlex.join(argv)}", file=self.stream, flush=True)

    def info(self, text: str, *, level: int = 0) -> None:
        """A progress or detail line (shown when ``verbose >= level``)."""
        if self.verbose >= level:
            print(f"    {text}", file=self.stream, flush=True)

    def progress(self, host: str, service: ServiceState) -> None:
        """A service's state while a push waits for convergence (one line per change).

        Printed as an info line here; subclasses (the dashboard) show it per service.
        """
        from deployer.converge import progress_line

        self.info(progress_line(service))

    def text(self, text: str) -> None:
        """Verbatim text (a diff, a table)."""
        print(text, file=self.stream, end="" if text.endswith("\n") else "\n", flush=True)

    def unreachable(self, host: str) -> None:
        self.counts.setdefault(host, Counter())["unreachable"] += 1

    def recap(self) -> None:
        """``PLAY RECAP`` then one line per host with its counts."""
        print("\nRECAP", file=self.stream)
        for host, counts in self.counts.items():
            parts = " ".join(f"{s}={counts.get(s, 0)}" for s in STATUSES)
            if counts.get("unreachable"):
                parts += f" unreachable={counts['unreachable']}"
            print(f"{host:<32} : {parts}", file=self.stream, flush=True)

    def exit_code(self) -> int:
        """0 all fine, 2 a step failed, 4 a host unreachable (as Ansible)."""
        total: Counter[str] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        if total.get("unreachable"):
            return 4
        if total.get("failed"):
            return 2
        return 0
