"""Figures tests measure (fuzzed requests, load during an update), printed at the end of the run
by the terminal summary hook in tests/conftest.py. Figures are reported, never asserted on
timing: speed is compared by the bench/ scripts."""

from __future__ import annotations

#: (section, line) in the order recorded.
FIGURES: list[tuple[str, str]] = []


def record(section: str, line: str) -> None:
    """Keep ``line`` under ``section`` for the end-of-run summary."""
    FIGURES.append((section, line))


def lines() -> list[str]:
    """The figures grouped by section, for printing."""
    out: list[str] = []
    sections: dict[str, list[str]] = {}
    for section, line in FIGURES:
        sections.setdefault(section, []).append(line)
    for section, entries in sections.items():
        out.append(f"{section}:")
        out.extend(f"  {entry}" for entry in entries)
    return out
