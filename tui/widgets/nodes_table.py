"""The Swarm's nodes, one row each: role, availability, state, engine, address, tasks."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import DataTable

from deployer.swarm import NodeState

COLUMNS = (
    ("node", "Node"),
    ("role", "Role"),
    ("availability", "Availability"),
    ("state", "State"),
    ("engine", "Engine"),
    ("address", "Address"),
    ("tasks", "Tasks"),
)

_AVAILABILITY_STYLE = {"active": "green", "pause": "yellow", "drain": "yellow"}


def state_cell(node: NodeState) -> Text:
    """``ready`` in green; anything else in red, with Swarm's reason when it gives one."""
    if node.state == "ready":
        return Text("ready", style="green")
    text = f"{node.state}: {node.message}" if node.message else node.state
    return Text(text, style="bold red")


class NodesTable(DataTable[str | Text]):
    """One row per node, keyed by node id; the cursor stays on its node across refreshes."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def show(self, nodes: tuple[NodeState, ...], tasks: Mapping[str, int]) -> None:
        """Replace the rows; ``tasks`` maps node ids to the stack's running tasks there."""
        selected = self.selected_id
        self.clear()
        for node in sorted(nodes, key=lambda n: (not n.is_manager, n.hostname)):
            role = f"{node.role} (leader)" if node.leader else node.role
            self.add_row(
                Text(node.hostname, style="bold" if node.is_manager else ""),
                role,
                Text(node.availability, style=_AVAILABILITY_STYLE.get(node.availability, "")),
                state_cell(node),
                node.engine_version,
                node.address,
                str(tasks.get(node.id, 0)),
                key=node.id,
            )
        if selected is not None:
            for index, node in enumerate(sorted(nodes, key=lambda n: (not n.is_manager,
                                                                      n.hostname))):
                if node.id == selected:
                    self.move_cursor(row=index)
                    break
