"""The base of the main screen's parts (it is built as a chain of classes so each part stays
small: ``ServiceActions`` < ``DeployActions`` < ``MainScreen``): the app, its backend, the
snapshot on screen, the selected service, and asking before acting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.swarm import ServiceState, SwarmSnapshot
from tui.backend import Backend
from tui.screens.base import WorkerScreen
from tui.screens.dialogs import ConfirmDialog

if TYPE_CHECKING:
    from tui.app import MlopsApp


class StackScreen(WorkerScreen):
    """What every part of the main screen relies on; ``MainScreen`` provides the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: SwarmSnapshot | None = None
        #: Replica targets of +/- presses not yet visible in a snapshot, so quick presses add up.
        self._scale_targets: dict[str, int] = {}

    @property
    def mlops_app(self) -> MlopsApp:
        from tui.app import MlopsApp

        assert isinstance(self.app, MlopsApp)
        return self.app

    @property
    def backend(self) -> Backend:
        return self.mlops_app.backend

    @property
    def selected_service(self) -> ServiceState | None:
        """The service under the cursor (the main screen knows its table)."""
        raise NotImplementedError

    def action_refresh(self) -> None:
        """Read a new snapshot now (the main screen does)."""
        raise NotImplementedError

    def _render_services(self) -> None:
        raise NotImplementedError

    def _require_service(self) -> ServiceState | None:
        svc = self.selected_service
        if svc is None:
            self.notify("no service selected", severity="warning")
        return svc

    def _confirm(self, question: str, label: str, then: object) -> None:
        def answered(yes: bool | None) -> None:
            if yes and callable(then):
                then()

        self.app.push_screen(ConfirmDialog(question, confirm_label=label), answered)
