"""The tasks of the selected service: slot, node, state vs desired, error, exit code, age."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from deployer.swarm import TaskState
from tui.widgets.formatting import format_age, task_state_cell

COLUMNS = (
    ("task", "Task"),
    ("node", "Node"),
    ("state", "State"),
    ("error", "Error"),
    ("exit", "Exit"),
    ("age", "Age"),
)


class TasksTable(DataTable[str | Text]):
    """Current tasks first, then the history Swarm keeps."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, tasks: tuple[TaskState, ...], now: datetime) -> None:
        """Replace the rows; ages are measured against ``now`` (the snapshot's time)."""
        self.clear()
        for task in tasks:
            name = (
                f"{task.service_name}.{task.slot}"
                if task.slot is not None
                else (f"{task.service_name}@{task.node_name}")
            )
            self.add_row(
                Text(name, style="" if task.is_current else "dim"),
                task.node_name,
                task_state_cell(task),
                Text(task.error, style="red") if task.error else "",
                "" if task.exit_code is None else str(task.exit_code),
                format_age(task.age(now)),
                key=task.id,
            )
