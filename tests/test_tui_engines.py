"""The dashboard on the modern engine kinds: Docker 26.1 managers on the classic and the
containerd image store (the bed's engine managers), reached over SSH, driven with Textual's
Pilot: the services refresh, and the scale keys change the manager's engine."""

from __future__ import annotations

import uuid
from typing import Any

import docker
import pytest
from cluster_bed import engine_managers  # noqa: F401  (session fixture)
from test_tui_e2e import SIZE, row_of, scale_up_and_back, until
from tui_stack import create_service, remove_stack

from deployer.inventory import adhoc_host
from tui.app import make_app
from tui.backend import host_backend_factory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["26.1", "26.1-containerd"])
async def test_the_dashboard_refreshes_and_scales_on_a_modern_engine(
    kind: str, engine_managers: dict[str, Any],  # noqa: F811
) -> None:
    manager = engine_managers["managers"][kind]
    api = docker.APIClient(base_url=manager["docker_host"], version="auto")
    stack = f"tui-{uuid.uuid4().hex[:6]}"
    try:
        web = create_service(api, stack, "web")
        host = adhoc_host(manager["alias"], ssh_config=engine_managers["ssh_config"])
        app = make_app(host_backend_factory(host)(), stack=stack, refresh_seconds=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: (row_of(app, "web") or [""] * 3)[2] == "1/1", "web 1/1")
            await scale_up_and_back(pilot, app, api, web)
    finally:
        remove_stack(api, stack)
        api.close()
