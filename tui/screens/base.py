"""The base of screens that run workers: the one place their failures are routed from."""

from __future__ import annotations

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState


class WorkerScreen(Screen[None]):
    """A screen whose thread workers report failures to the app.

    ``Worker.StateChanged`` does not bubble, so the handler sits here, on the node the workers
    belong to, and hands failures to ``MlopsApp.worker_failed`` (toast, status bar or error
    screen).
    """

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        from tui.app import MlopsApp

        if isinstance(self.app, MlopsApp):
            self.app.worker_failed(event.worker)
