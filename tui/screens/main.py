"""The main screen: services of the stack, the selected service's tasks, events, status bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Label
from textual.worker import WorkerState

from deployer.swarm import ServiceState, SwarmSnapshot, diff_snapshots
from tui.drift import replica_drift
from tui.messages import (
    ServicesRefreshed,
)
from tui.screens.deploy_actions import DeployActions
from tui.widgets.events_feed import EventsFeed
from tui.widgets.services_table import ServicesTable
from tui.widgets.status_bar import StatusBar
from tui.widgets.tasks_table import TasksTable

if TYPE_CHECKING:
    pass


class MainScreen(DeployActions):
    """Services table on top; tasks of the selected one and the events feed below."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="main.filter"),
        Binding("l", "logs", "Logs", id="main.logs"),
        Binding("L", "stack_logs", "Stack logs", id="main.stack_logs"),
        Binding("s", "scale", "Scale", id="main.scale"),
        Binding("plus,equals_sign", "scale_by(1)", "+1 replica", id="main.scale_up"),
        Binding("minus", "scale_by(-1)", "-1 replica", id="main.scale_down"),
        Binding("r", "restart", "Restart", id="main.restart"),
        Binding("b", "rollback", "Rollback", id="main.rollback"),
        Binding("x,delete", "remove", "Remove", id="main.remove"),
        Binding("d", "deploy", "Deploy", id="main.deploy"),
        Binding(
            "D", "deploy_check", "Deploy check (plan only)", id="main.deploy_check", show=False
        ),
        Binding(
            "w", "write_replicas", "Write replicas to values", id="main.write_replicas",
            show=False,
        ),
        Binding("a", "toggle_all", "All services", id="main.toggle_all"),
        Binding("n", "nodes", "Nodes", id="main.nodes"),
        Binding("m", "models", "Models", id="main.models"),
        Binding("e", "toggle_events", "Events", id="main.toggle_events", show=False),
        Binding("f5,ctrl+r", "refresh", "Refresh now", id="main.refresh", show=False),
        Binding("escape", "clear_filter", "Clear filter", id="main.clear_filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_all = False
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Input(placeholder="filter services (name or image)", id="filter")
        with Vertical(id="services-pane"):
            yield Label("Services", classes="pane-title", id="services-title")
            yield ServicesTable(id="services")
        with Horizontal(id="lower"):
            with Vertical(id="tasks-pane"):
                yield Label("Tasks", classes="pane-title", id="tasks-title")
                yield TasksTable(id="tasks")
            with Vertical(id="events-pane"):
                yield Label("Events", classes="pane-title")
                yield EventsFeed(id="events")
        yield Footer()

    def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        status.host = self.backend.host_label
        status.stack = self.mlops_app.stack or ""
        self.query_one("#filter", Input).display = False
        self.query_one(ServicesTable).focus()
        self.action_refresh()
        self.set_interval(self.mlops_app.refresh_seconds, self._tick)

    # -- refresh ------------------------------------------------------------------------------

    def _tick(self) -> None:
        # Skip a tick while the previous read still runs (a slow or dead connection) instead
        # of piling up threads; the read in flight will report.
        if any(
            w.group == "refresh" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        ):
            return
        self.action_refresh()

    def action_refresh(self) -> None:
        """Read a new snapshot now."""
        self.refresh_snapshot(self.snapshot, None if self.show_all else self.mlops_app.stack)

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def refresh_snapshot(self, previous: SwarmSnapshot | None, stack: str | None) -> None:
        """Worker: one read of the stack (≤ 3 API calls), then post what changed."""
        snapshot = self.backend.snapshot(stack)
        self.post_message(ServicesRefreshed(snapshot, diff_snapshots(previous, snapshot)))

    @on(ServicesRefreshed)
    def _refreshed(self, message: ServicesRefreshed) -> None:
        wanted_stack = None if self.show_all else self.mlops_app.stack
        if message.snapshot.stack != wanted_stack:
            return  # a read started before the toggle: drop it
        self.snapshot = message.snapshot
        for sid, target in list(self._scale_targets.items()):
            svc = message.snapshot.service(sid)
            if svc is None or svc.replicas_desired == target:
                del self._scale_targets[sid]
        self.mlops_app.connection_restored()
        status = self.query_one(StatusBar)
        status.last_refresh = message.snapshot.taken_at
        nodes = message.snapshot.nodes
        ready = sum(1 for n in nodes if n.state == "ready")
        status.nodes = f"{ready}/{len(nodes)} ready" if nodes else ""
        self.query_one(EventsFeed).add_events(message.events)
        self._render_services()

    def _visible_services(self) -> tuple[ServiceState, ...]:
        if self.snapshot is None:
            return ()
        text = self.filter_text.lower()
        return tuple(
            s
            for s in self.snapshot.services
            if not text or text in s.short_name.lower() or text in s.image.lower()
        )

    def _render_services(self) -> None:
        services = self._visible_services()
        drift = replica_drift(services, self.mlops_app.declared_replicas)
        table = self.query_one(ServicesTable)
        table.show(services, drift)
        total = len(self.snapshot.services) if self.snapshot else 0
        shown = f"{len(services)}/{total}" if self.filter_text else str(total)
        scope = "all services" if self.show_all else f"stack {self.mlops_app.stack}"
        title = f"Services ({scope}: {shown})"
        if drift:
            title += f"  [{len(drift)} differ from the values file; w: write back]"
        self.query_one("#services-title", Label).update(title)
        self._render_tasks()

    def _render_tasks(self) -> None:
        svc = self.selected_service
        tasks = self.query_one(TasksTable)
        if svc is None or self.snapshot is None:
            tasks.clear()
            self.query_one("#tasks-title", Label).update("Tasks")
            return
        tasks.show(self.snapshot.tasks_of(svc), self.snapshot.taken_at)
        self.query_one("#tasks-title", Label).update(f"Tasks of {svc.short_name}")

    @on(DataTable.RowHighlighted, "#services")
    def _service_highlighted(self) -> None:
        self._render_tasks()

    @property
    def selected_service(self) -> ServiceState | None:
        """The service under the cursor."""
        sid = self.query_one(ServicesTable).selected_id
        if sid is None or self.snapshot is None:
            return None
        return self.snapshot.service(sid)

    # -- filter / toggles ---------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show the filter box and focus it."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._render_services()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(ServicesTable).focus()

    def action_clear_filter(self) -> None:
        """Clear and hide the filter."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.query_one(ServicesTable).focus()
        self._render_services()

    def action_toggle_all(self) -> None:
        """Switch between the stack's services and every service of the Swarm."""
        self.show_all = not self.show_all
        self.snapshot = None
        self.action_refresh()

    def action_toggle_events(self) -> None:
        """Show or hide the events feed."""
        pane = self.query_one("#events-pane")
        pane.display = not pane.display

    # -- logs ---------------------------------------------------------------------------------

    def action_models(self) -> None:
        """What each model service serves, the registry's versions; promote one."""
        from tui.screens.models import ModelsScreen

        self.app.push_screen(ModelsScreen(self.mlops_app.stack))

    def action_nodes(self) -> None:
        """The Swarm's nodes: role, availability, state, engine, tasks; drain / activate."""
        from tui.screens.nodes import NodesScreen

        self.app.push_screen(NodesScreen(self.mlops_app.stack, self.snapshot))

    def action_logs(self) -> None:
        """Logs of the selected service."""
        svc = self.selected_service
        if svc is None:
            self.notify("no service selected", severity="warning")
            return
        self._open_logs([svc], svc.short_name)

    def action_stack_logs(self) -> None:
        """Logs of every service shown, interleaved."""
        if self.snapshot is None or not self.snapshot.services:
            self.notify("no services", severity="warning")
            return
        self._open_logs(list(self._visible_services()), self.mlops_app.stack or "all services")

    def _open_logs(self, services: list[ServiceState], title: str) -> None:
        from tui.screens.logs import LogsScreen

        assert self.snapshot is not None
        self.app.push_screen(LogsScreen(services, title))

    def set_connection(self, state: str, detail: str = "") -> None:
        """Show the connection state in the status bar."""
        status = self.query_one(StatusBar)
        status.connection = state
        status.detail = detail

    def switch_backend(self) -> None:
        """The app now talks to another host: start over."""
        self.snapshot = None
        self._scale_targets.clear()
        status = self.query_one(StatusBar)
        status.host = self.backend.host_label
        status.connection = "connecting"
        status.detail = ""
        self.query_one(EventsFeed).clear()
        self.action_refresh()
