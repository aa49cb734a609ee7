"""Progress of a deploy (or a check) run from the dashboard: steps, services, outcome.

The push runs in a worker of the main screen, so leaving this screen does not stop it; the
main screen keeps every event and this screen shows them again when it is reopened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Log

from tui.deploy import (
    DeployEvent,
    DeployRequest,
    DeployResult,
    InfoReported,
    ServiceProgressed,
    StepReported,
)
from tui.widgets.formatting import HEALTH_STYLES

STEP_STYLES = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "cyan"}


class DeployScreen(Screen[None]):
    """Steps as they are reported, one row per service while the stack converges."""

    BINDINGS = [Binding("escape,q", "back", "Back (the deploy keeps running)", id="deploy.back")]

    def __init__(
        self,
        request: DeployRequest,
        host: str,
        source: Callable[[], tuple[Sequence[DeployEvent], DeployResult | None]],
    ) -> None:
        super().__init__()
        self.request = request
        self._host = host
        #: Where the events are kept (the main screen): read again on every sync.
        self._source = source
        self._shown = 0
        self._rows: set[str] = set()
        self.result: DeployResult | None = None

    def compose(self) -> ComposeResult:
        what = "Check (plan only, nothing changes)" if self.request.check else "Deploy"
        yield Label(f"{what}: stack {self.request.stack or '?'} on {self._host}", id="deploy-title")
        yield Label("running…", id="deploy-status")
        # A check never waits for convergence: no per-service progress to show.
        yield Label("Services", classes="pane-title", id="deploy-services-title")
        yield DataTable(id="deploy-services", cursor_type="none")
        yield Label("Steps", classes="pane-title")
        yield Log(id="deploy-log", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#deploy-services", DataTable)
        for key, label in (
            ("service", "Service"),
            ("replicas", "Replicas"),
            ("health", "Health"),
            ("update", "Update"),
        ):
            table.add_column(label, key=key)
        if self.request.check:
            table.display = False
            self.query_one("#deploy-services-title").display = False
        self.sync()

    def sync(self) -> None:
        """Show the events not shown yet (all of them when the screen was just opened, so a
        reopened screen shows the run from its start) and the outcome once there is one."""
        events, result = self._source()
        for event in events[self._shown :]:
            self._show_event(event)
        self._shown = len(events)
        if result is not None and self.result is None:
            self._finish(result)

    def _show_event(self, event: DeployEvent) -> None:
        """Show one reported event."""
        if isinstance(event, ServiceProgressed):
            table = self.query_one("#deploy-services", DataTable)
            health = Text(event.health, style=HEALTH_STYLES.get(event.health, ""))
            cells = (event.service, event.replicas, health, event.update_state.replace("_", " "))
            if event.service in self._rows:
                for column, value in zip(
                    ("service", "replicas", "health", "update"), cells, strict=True
                ):
                    table.update_cell(event.service, column, value)
            else:
                self._rows.add(event.service)
                table.add_row(*cells, key=event.service)
            return
        log = self.query_one("#deploy-log", Log)
        if isinstance(event, StepReported):
            log.write_line(event.describe(check=self.request.check))
        elif isinstance(event, InfoReported):
            log.write_line(f"    {event.text}")

    def _finish(self, result: DeployResult) -> None:
        self.result = result
        style = STEP_STYLES.get(result.outcome, "")
        self.query_one("#deploy-status", Label).update(Text(result.summary(), style=style))

    def action_back(self) -> None:
        """Back to the services."""
        self.app.pop_screen()
