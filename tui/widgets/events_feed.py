"""The events feed: services created, updated, removed; tasks that failed, with their error."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from deployer.swarm import SwarmEvent

KIND_STYLES = {
    "service-created": ("created", "green"),
    "service-updated": ("updated", "cyan"),
    "service-removed": ("removed", "magenta"),
    "task-failed": ("task failed", "bold red"),
}


class EventsFeed(RichLog):
    """Newest at the bottom; bounded."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, **kwargs)  # type: ignore[arg-type]

    def add_events(self, events: list[SwarmEvent]) -> None:
        """Append events, one line each."""
        for event in events:
            label, style = KIND_STYLES[event.kind]
            line = Text()
            line.append(event.at.astimezone().strftime("%H:%M:%S "), style="dim")
            line.append(f"{label:<12}", style=style)
            line.append(event.service, style="bold")
            if event.detail:
                line.append(f"  {event.detail}")
            self.write(line)
