"""Modal dialogs: confirm a destructive action, ask for a replica count, show a fatal error."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no; Enter or `y` confirms, Escape or `n` cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, *, confirm_label: str = "Yes") -> None:
        super().__init__()
        self._question = question
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._question, id="question")
            with Horizontal(classes="buttons"):
                yield Button(self._confirm_label, variant="error", id="yes")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ScaleDialog(ModalScreen[int | None]):
    """Ask for a replica count (0 or more)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="scale.cancel")]

    def __init__(self, service: str, current: int) -> None:
        super().__init__()
        self._service = service
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Scale {self._service} (now {self._current} replicas) to:")
            yield Input(str(self._current), type="integer", id="replicas")
            yield Static("", id="scale-error", classes="error")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = int(event.value)
        except ValueError:
            value = -1
        if value < 0:
            self.query_one("#scale-error", Static).update("enter a whole number, 0 or more")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ErrorScreen(ModalScreen[None]):
    """An error the dashboard cannot carry on past by itself: what happened and the fix."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="error.close")]

    def __init__(self, title: str, message: str, fix: str | None = None) -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._fix = fix

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self._title, classes="title")
            yield Static(self._message, markup=False)
            if self._fix:
                yield Static(f"fix: {self._fix}", markup=False, classes="fix")
            yield Button("Close", id="close")

    @on(Button.Pressed)
    def _pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
