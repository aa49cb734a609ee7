"""The dashboard's Nodes view on the three-node cluster (Pilot over real SSH to the manager):
nodes with role, availability, state, engine and the stack's tasks per node; drain and activate
with confirmation through the deployer's node actions (audit log); a worker whose engine stops
shows as down within a refresh and its service's missing replica is visible; back again, shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_bed import ClusterStack, bed_command, cluster, wait_until  # noqa: F401
from textual.pilot import Pilot

from deployer.cli import main
from deployer.inventory import adhoc_host
from tui.app import MlopsApp, make_app
from tui.backend import host_backend_factory
from tui.screens.dialogs import ConfirmDialog
from tui.screens.main import MainScreen
from tui.screens.nodes import NodesScreen
from tui.widgets.nodes_table import NodesTable
from tui.widgets.services_table import ServicesTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (160, 40)
NODES = {"mlc-manager", "mlc-worker1", "mlc-worker2"}


@pytest.fixture(scope="module")
def stack(cluster: dict[str, Any],  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    before = os.environ.get("GOOGLE_API_KEY")
    os.environ["GOOGLE_API_KEY"] = "tui-nodes-key"
    placed = ClusterStack(
        cluster, tmp_path_factory.mktemp("tui-nodes"), prefix="tn", replicas=3,
        base_port=21400,
        extra={"llm-connector": {"placement": {"max_replicas_per_node": 1}}},
    )
    try:
        assert main(placed.argv("push", "--timeout", "180")) == 0
        yield placed
    finally:
        placed.cleanup()
        if before is None:
            os.environ.pop("GOOGLE_API_KEY", None)
        else:
            os.environ["GOOGLE_API_KEY"] = before


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str,
                timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.25)):
        if predicate():
            return
        await pilot.pause(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def rows(screen: NodesScreen) -> dict[str, list[str]]:
    table = screen.query_one(NodesTable)
    out = {}
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        out[cells[0]] = cells
    return out


def llm_replicas(app: MlopsApp) -> str:
    main_screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    table = main_screen.query_one(ServicesTable)
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        if cells[0] == "llm-connector":
            return cells[2]
    return ""


async def select_node(pilot: Pilot[None], screen: NodesScreen, hostname: str) -> None:
    table = screen.query_one(NodesTable)
    for i in range(table.row_count):
        if str(table.get_row_at(i)[0]) == hostname:
            table.move_cursor(row=i)
            await pilot.pause()
            return
    raise AssertionError(f"{hostname} not in the nodes table")


def audit(stack: ClusterStack) -> str:
    path = Path(stack.manager["state_dir"]) / stack.name / "audit.log"
    return path.read_text() if path.exists() else ""


async def test_nodes_view_drain_activate_and_a_node_going_down(
    stack: ClusterStack, cluster: dict[str, Any]  # noqa: F811
) -> None:
    host = adhoc_host(stack.manager["alias"], ssh_config=cluster["ssh_config"])
    app = make_app(host_backend_factory(host)(), stack=stack.name, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: llm_replicas(app) == "3/3", "llm-connector 3/3")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NodesScreen), "the nodes screen")
        screen = app.screen
        assert isinstance(screen, NodesScreen)
        await until(pilot, lambda: set(rows(screen)) == NODES, "three nodes")
        table = rows(screen)
        assert table["mlc-manager"][1].startswith("manager")
        assert table["mlc-worker1"][1] == "worker" and table["mlc-worker2"][1] == "worker"
        assert all(r[2] == "active" and r[3] == "ready" and r[4] for r in table.values())
        # The stack's running tasks per node: an llm-connector on each (at most one per node),
        # plus the S3 store on one of them.
        await until(pilot, lambda: sorted(r[6] for r in rows(screen).values()) == ["1", "1", "2"],
                    "a task on each node, two on one")

        # Drain a worker, with confirmation, through the deployer (audit line).
        await select_node(pilot, screen, "mlc-worker1")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await until(pilot, lambda: rows(screen)["mlc-worker1"][2] == "drain", "drained")
        await until(pilot, lambda: '"node-drain"' in audit(stack), "the drain's audit line")
        await until(pilot, lambda: rows(screen)["mlc-worker1"][6] == "0", "its tasks gone")
        await select_node(pilot, screen, "mlc-worker1")
        await pilot.press("a", "y")
        await until(pilot, lambda: rows(screen)["mlc-worker1"][2] == "active", "active again")
        await until(pilot, lambda: '"node-active"' in audit(stack), "the activation's line")
        await until(pilot, lambda: llm_replicas(app) == "3/3", "3/3 after activate",
                    timeout=90)

        # A worker's engine stops: down within a refresh, its replica missing on the main view.
        bed_command("cluster-node", "stop", "worker2")
        try:
            await until(pilot, lambda: rows(screen)["mlc-worker2"][3].startswith("down"),
                        "worker2 shown down", timeout=90)
            assert "down: mlc-worker2" in str(screen.query_one("#nodes-title").render())
            await pilot.press("escape")
            await until(pilot, lambda: llm_replicas(app) == "2/3", "the missing replica",
                        timeout=60)
        finally:
            bed_command("cluster-node", "start", "worker2")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NodesScreen), "the nodes screen")
        back = app.screen
        assert isinstance(back, NodesScreen)
        await until(pilot, lambda: rows(back).get("mlc-worker2", ["", "", "", ""])[3]
                    == "ready", "worker2 ready again", timeout=90)
    wait_until("3/3 again", lambda: len(stack.running_tasks("llm-connector")) == 3, 90)
