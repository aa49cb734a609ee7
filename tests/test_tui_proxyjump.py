"""The dashboard through a jump host (Pilot): the cluster manager's private address is reachable
only through the manager itself (ProxyJump in the ssh config); the dashboard opens over that
chain, shows the manager's stack services and their tasks, and reads a service's logs over it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cluster_bed import cluster, node_api  # noqa: F401
from textual.pilot import Pilot
from tui_stack import create_service, remove_stack

from deployer.inventory import adhoc_host
from tui.app import make_app
from tui.backend import DockerBackend, host_backend_factory
from tui.screens.main import MainScreen
from tui.widgets.services_table import ServicesTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str,
                timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.25)):
        if predicate():
            return
        await pilot.pause(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_dashboard_over_a_jump_host(cluster: dict[str, Any]) -> None:  # noqa: F811
    stack = f"tj-{uuid.uuid4().hex[:6]}"
    api = node_api(cluster, "manager")
    try:
        create_service(api, stack, "web", replicas=0)
        host = adhoc_host(cluster["private_alias"], ssh_config=cluster["ssh_config"])
        assert host.ssh is not None and host.ssh.jump, "the private alias must need a jump"
        backend = host_backend_factory(host)()
        assert isinstance(backend, DockerBackend)
        app = make_app(backend, stack=stack, refresh_seconds=0.5)
        async with app.run_test(size=(150, 40)) as pilot:
            def shown() -> list[str]:
                main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
                table = main.query_one(ServicesTable)
                return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]

            await until(pilot, lambda: "web" in shown(), "the stack's service over the jump")
            assert "via" in backend.host_label  # the status bar says it goes through the jump
            assert app.connection == "connected"
    finally:
        remove_stack(api, stack)
        api.close()
