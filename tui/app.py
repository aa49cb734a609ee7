"""The Textual App (and its CSS path), and ``make_app``: the one way to build it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker

from deployer.errors import ConnectError, MlopsError
from tui.backend import Backend
from tui.screens.dialogs import ErrorScreen
from tui.screens.main import MainScreen


class MlopsApp(App[None]):
    """The dashboard. Holds the backend and settings; screens do the work."""

    CSS_PATH = "app.tcss"
    TITLE = "mlops-tui"
    BINDINGS = [
        Binding("question_mark", "toggle_help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("h", "switch_host", "Hosts", id="app.switch_host"),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        stack: str | None,
        refresh_seconds: float = 2.0,
        declared_replicas: Mapping[str, int] | None = None,
        hosts: Sequence[tuple[str, Callable[[], Backend]]] = (),
        values_files: Sequence[Path] = (),
        value_sets: Sequence[str] = (),
    ) -> None:
        super().__init__()
        #: The -f files and --set overrides the dashboard was started with (deploy, drift).
        self.values_files = [Path(p) for p in values_files]
        self.value_sets = list(value_sets)
        self.backend = backend
        self.stack = stack
        self.refresh_seconds = refresh_seconds
        self.declared_replicas = declared_replicas
        #: Other targets the user may switch to (inventory hosts): label and backend factory.
        self.hosts = list(hosts)
        self.connection = "connecting"
        self._last_refresh_error = ""

    def on_mount(self) -> None:
        self.push_screen(MainScreen())

    def on_unmount(self) -> None:
        self.backend.close()

    def _main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # -- connection state ---------------------------------------------------------------------

    def connection_lost(self, reason: str) -> None:
        """Show a lost connection (once per loss); the refresh timer keeps retrying."""
        main = self._main()
        if main is not None:
            main.set_connection("lost", reason)
        if self.connection != "lost":
            self.notify(reason, title="connection lost (retrying)", severity="error")
        self.connection = "lost"

    def connection_restored(self) -> None:
        """A read succeeded: clear a lost state."""
        if self.connection == "lost":
            self.notify(self.backend.host_label, title="reconnected")
        if self.connection != "connected":
            main = self._main()
            if main is not None:
                main.set_connection("connected")
        self.connection = "connected"
        self._last_refresh_error = ""

    # -- the one place worker failures go -----------------------------------------------------

    def worker_failed(self, worker: Worker[object]) -> None:
        """Route a failed worker: a lost connection to the status bar (and retry), a project
        error to a toast, anything else (a bug) to the error screen."""
        error = worker.error
        main = self._main()
        if worker.name == "scale_service" and main is not None:
            main.forget_scale_targets()
        if isinstance(error, ConnectError):
            self.connection_lost(error.reason)
            if worker.group != "refresh":
                self.notify(error.render(), title=error.title, severity="error")
        elif isinstance(error, MlopsError):
            # A refresh that keeps failing the same way says so once, not every tick.
            if worker.group == "refresh":
                if error.message == self._last_refresh_error:
                    return
                self._last_refresh_error = error.message
            self.notify(error.render(), title=error.title, severity="error", timeout=8)
        else:
            self.push_screen(
                ErrorScreen(
                    "unexpected error",
                    f"{type(error).__name__}: {error}",
                    fix="this is a bug in mlops-tui: please report it with the steps that led here",
                )
            )

    # -- help, hosts, command palette ---------------------------------------------------------

    def action_toggle_help(self) -> None:
        """Show or hide the keys of the current screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_switch_host(self) -> None:
        """Pick another host of the inventory."""
        if len(self.hosts) < 2:
            self.notify("no other host: pass an inventory with -i", severity="warning")
            return
        from tui.screens.hosts import HostPicker

        def picked(index: int | None) -> None:
            if index is None:
                return
            label, factory = self.hosts[index]
            self.backend.close()
            self.backend = factory()
            self.connection = "connecting"
            main = self._main()
            if main is not None:
                main.switch_backend()

        self.push_screen(HostPicker([label for label, _ in self.hosts]), picked)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in (*screen.BINDINGS, *self.BINDINGS):
            if not isinstance(binding, Binding) or binding.action in ("quit",):
                continue
            target = screen if binding in screen.BINDINGS else self
            yield SystemCommand(
                binding.description,
                f"{binding.description} (key: {binding.key.split(',')[0]})",
                lambda action=binding.action, node=target: self.run_action(action, node),
            )


def make_app(
    backend: Backend,
    *,
    stack: str | None = "mlops",
    refresh_seconds: float = 2.0,
    declared_replicas: Mapping[str, int] | None = None,
    hosts: Sequence[tuple[str, Callable[[], Backend]]] = (),
    values_files: Sequence[Path] = (),
    value_sets: Sequence[str] = (),
) -> MlopsApp:
    """Build the dashboard (used by the console script, Pilot tests and snapshot tests)."""
    return MlopsApp(
        backend,
        stack=stack,
        refresh_seconds=refresh_seconds,
        declared_replicas=declared_replicas,
        hosts=hosts,
        values_files=values_files,
        value_sets=value_sets,
    )
