"""The nodes screen: every node of the Swarm with its role, availability, state, engine and the
stack's tasks on it; drain and activate (through the deployer's node actions: lock, audit)."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Label
from textual.worker import WorkerState

from deployer.swarm import NodeState, SwarmSnapshot
from tui.backend import Backend
from tui.messages import NodeAvailabilitySet, NodesRefreshed
from tui.screens.base import WorkerScreen
from tui.screens.dialogs import ConfirmDialog
from tui.widgets.nodes_table import NodesTable
from tui.widgets.status_bar import StatusBar


class NodesScreen(WorkerScreen):
    """Nodes on top of the main screen; refreshed on the dashboard's interval."""

    BINDINGS = [
        Binding("d", "drain", "Drain", id="nodes.drain"),
        Binding("a", "activate", "Activate", id="nodes.activate"),
        Binding("escape,n", "app.pop_screen", "Back", id="nodes.back"),
    ]

    def __init__(self, stack: str | None, snapshot: SwarmSnapshot | None) -> None:
        super().__init__()
        self._stack = stack
        self.snapshot = snapshot

    @property
    def backend(self) -> Backend:
        from tui.app import MlopsApp

        assert isinstance(self.app, MlopsApp)
        return self.app.backend

    def compose(self) -> ComposeResult:
        yield StatusBar(id="nodes-status")
        yield Label("Nodes", classes="pane-title", id="nodes-title")
        yield NodesTable(id="nodes")
        yield Footer()

    def on_mount(self) -> None:
        from tui.app import MlopsApp

        status = self.query_one(StatusBar)
        status.host = self.backend.host_label
        status.stack = self._stack or ""
        self.query_one(NodesTable).focus()
        if self.snapshot is not None:
            self._show(self.snapshot)
        self.refresh_nodes()
        assert isinstance(self.app, MlopsApp)
        self.set_interval(self.app.refresh_seconds, self._tick)

    def _tick(self) -> None:
        if not any(w.group == "nodes" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers):
            self.refresh_nodes()

    @work(thread=True, exclusive=True, group="nodes", exit_on_error=False)
    def refresh_nodes(self) -> None:
        """Worker: one snapshot (services, tasks, nodes) of the stack."""
        self.post_message(NodesRefreshed(self.backend.snapshot(self._stack)))

    @on(NodesRefreshed)
    def _refreshed(self, message: NodesRefreshed) -> None:
        self.snapshot = message.snapshot
        self._show(message.snapshot)

    def _show(self, snapshot: SwarmSnapshot) -> None:
        tasks = {n.id: sum(1 for t in snapshot.tasks_on(n) if t.state == "running")
                 for n in snapshot.nodes}
        self.query_one(NodesTable).show(snapshot.nodes, tasks)
        down = snapshot.nodes_down
        ready = len(snapshot.nodes) - len(down)
        title = f"Nodes ({ready}/{len(snapshot.nodes)} ready)"
        if down:
            title += "  down: " + ", ".join(n.hostname for n in down)
        self.query_one("#nodes-title", Label).update(title)
        status = self.query_one(StatusBar)
        status.last_refresh = snapshot.taken_at
        status.nodes = f"{ready}/{len(snapshot.nodes)} ready" if snapshot.nodes else ""

    @property
    def selected_node(self) -> NodeState | None:
        node_id = self.query_one(NodesTable).selected_id
        if self.snapshot is None or node_id is None:
            return None
        return next((n for n in self.snapshot.nodes if n.id == node_id), None)

    def _ask(self, availability: str, question: str, label: str) -> None:
        node = self.selected_node
        if node is None:
            self.notify("no node selected", severity="warning")
            return
        if node.availability == availability:
            self.notify(f"{node.hostname} is already {availability}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.set_availability(node, availability)

        self.app.push_screen(ConfirmDialog(question.format(node=node.hostname),
                                           confirm_label=label), answered)

    def action_drain(self) -> None:
        """Move every task off the selected node, after confirmation."""
        self._ask("drain", "Drain {node}? Its tasks move to the other nodes.", "Drain")

    def action_activate(self) -> None:
        """Let the selected node take tasks again, after confirmation."""
        self._ask("active", "Activate {node}? It takes new tasks again.", "Activate")

    @work(thread=True, group="node-action", exit_on_error=False)
    def set_availability(self, node: NodeState, availability: str) -> None:
        """Worker: the deployer's drain/activate of a node (stack lock, audit line)."""
        self.backend.set_availability(node, availability, self._stack)
        self.post_message(NodeAvailabilitySet(node.hostname, availability))

    @on(NodeAvailabilitySet)
    def _availability_set(self, message: NodeAvailabilitySet) -> None:
        self.notify(f"{message.node} is now {message.availability}", title="node")
        self.refresh_nodes()
