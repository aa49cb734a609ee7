"""The Models screen: which model, version and alias each model service serves now (with that
version's metrics), the registry's versions of those models, and promoting one to ``champion``
through the deployer's action (stack lock, audit line). The services switch on their next
alias poll; the view shows it on a later refresh."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Label
from textual.worker import WorkerState

from deployer.actions.models import ModelsOverview
from tui.backend import Backend
from tui.messages import ModelPromoted, ModelsRefreshed
from tui.screens.base import WorkerScreen
from tui.screens.dialogs import ConfirmDialog
from tui.widgets.models_tables import ServedTable, VersionsTable
from tui.widgets.status_bar import StatusBar

#: Seconds between reads: each one asks MLflow and both model services over the connection.
REFRESH_SECONDS = 3.0


class ModelsScreen(WorkerScreen):
    """Served models on top, registered versions below."""

    BINDINGS = [
        Binding("p", "promote", "Promote to champion", id="models.promote"),
        Binding("f5,ctrl+r", "refresh", "Refresh now", id="models.refresh"),
        Binding("escape,m", "app.pop_screen", "Back", id="models.back"),
    ]

    def __init__(self, stack: str | None) -> None:
        super().__init__()
        self._stack = stack
        self.overview: ModelsOverview | None = None

    @property
    def backend(self) -> Backend:
        from tui.app import MlopsApp

        assert isinstance(self.app, MlopsApp)
        return self.app.backend

    def compose(self) -> ComposeResult:
        yield StatusBar(id="models-status")
        yield Label("Served now", classes="pane-title")
        yield ServedTable(id="served")
        yield Label("Registered versions", classes="pane-title", id="versions-title")
        yield VersionsTable(id="versions")
        yield Footer()

    def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        status.host = self.backend.host_label
        status.stack = self._stack or ""
        self.query_one(VersionsTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if not any(w.group == "models" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers):
            self.action_refresh()

    def action_refresh(self) -> None:
        """Read the served models and the registry now."""
        self.read_models()

    @work(thread=True, exclusive=True, group="models", exit_on_error=False)
    def read_models(self) -> None:
        """Worker: the services' /model and the registry, through the connection."""
        self.post_message(ModelsRefreshed(self.backend.models(self._stack)))

    @on(ModelsRefreshed)
    def _refreshed(self, message: ModelsRefreshed) -> None:
        self.overview = message.overview
        self.query_one(ServedTable).show(message.overview.served)
        self.query_one(VersionsTable).show(message.overview.registry, message.overview.served)
        title = "Registered versions"
        if message.overview.missing:
            title += f"  (not registered yet: {', '.join(message.overview.missing)})"
        self.query_one("#versions-title", Label).update(title)
        self.app.connection_restored()  # type: ignore[attr-defined]

    def action_promote(self) -> None:
        """Make the selected version the champion, after confirmation."""
        selected = self.query_one(VersionsTable).selected
        if selected is None:
            self.notify("no version selected", severity="warning")
            return
        model, version = selected

        def answered(yes: bool | None) -> None:
            if yes:
                self.promote(model, version)

        self.app.push_screen(
            ConfirmDialog(f"Promote {model} version {version} to champion? The services "
                          "serving it switch on their next poll.", confirm_label="Promote"),
            answered)

    @work(thread=True, group="model-action", exit_on_error=False)
    def promote(self, model: str, version: str) -> None:
        """Worker: the deployer's promote (stack lock, audit line)."""
        self.backend.promote(self._stack, model, version)
        self.post_message(ModelPromoted(model, version))

    @on(ModelPromoted)
    def _promoted(self, message: ModelPromoted) -> None:
        self.notify(f"{message.model} version {message.version} is champion", title="promote")
        self.action_refresh()
