"""Pick a host of the inventory to look at."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList


class HostPicker(ModalScreen[int | None]):
    """A list of host labels; Enter picks, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="hosts.cancel")]

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self._labels = labels

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Switch to host:")
            yield OptionList(*self._labels, id="hosts")

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        self.dismiss(None)
