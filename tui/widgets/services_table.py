"""The services of the stack, one row each; the cursor stays on its service across refreshes."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import DataTable

from deployer.swarm import ServiceState
from tui.widgets.formatting import health_cell, ports_cell, replicas_cell, update_cell

COLUMNS = (
    ("name", "Service"),
    ("mode", "Mode"),
    ("replicas", "Replicas"),
    ("image", "Image"),
    ("ports", "Ports"),
    ("update", "Update"),
    ("health", "Health"),
    ("drift", "Values"),
)


class ServicesTable(DataTable[str | Text]):
    """One row per service, keyed by service id."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(
        self, services: tuple[ServiceState, ...], drift: Mapping[str, int] | None = None
    ) -> None:
        """Replace the rows with ``services``; ``drift`` maps short names to the values-file
        replica count where it differs from the live one."""
        selected = self.selected_id
        self.clear()
        for svc in services:
            wanted = (drift or {}).get(svc.short_name)
            self.add_row(
                svc.short_name,
                svc.mode,
                replicas_cell(svc),
                svc.image,
                ports_cell(svc),
                update_cell(svc),
                health_cell(svc),
                Text(f"drift: {wanted}", style="bold magenta") if wanted is not None else "",
                key=svc.id,
            )
        if selected is not None:
            ids = [svc.id for svc in services]
            if selected in ids:
                self.move_cursor(row=ids.index(selected), animate=False)

    @property
    def selected_id(self) -> str | None:
        """Id of the service under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - cursor outside the (just cleared) table
            return None
        return key.value
