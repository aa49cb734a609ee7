"""The line at the top: host, stack, nodes, last refresh and connection state."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """Where the dashboard looks and whether it can still see."""

    host: reactive[str] = reactive("")
    stack: reactive[str] = reactive("")
    nodes: reactive[str] = reactive("")
    last_refresh: reactive[datetime | None] = reactive(None)
    connection: reactive[str] = reactive("connecting")
    detail: reactive[str] = reactive("")

    def render(self) -> Text:
        style = {"connected": "green", "connecting": "yellow", "lost": "bold red"}.get(
            self.connection, ""
        )
        text = Text()
        text.append(" host ", style="dim")
        text.append(self.host, style="bold")
        text.append("  stack ", style="dim")
        text.append(self.stack or "(all services)", style="bold")
        if self.nodes:
            text.append("  nodes ", style="dim")
            text.append(self.nodes)
        text.append("  refreshed ", style="dim")
        text.append(
            self.last_refresh.astimezone().strftime("%H:%M:%S") if self.last_refresh else "never"
        )
        text.append("  ")
        text.append(f"● {self.connection}", style=style)
        if self.detail:
            text.append(f" ({self.detail})", style=style)
        return text
