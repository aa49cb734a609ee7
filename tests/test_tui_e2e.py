"""The dashboard driven with Textual's Pilot against the test bed's real Swarm (and SSH).

Stacks are `tui-*` (services created with the SDK, labelled as stack members); every test
removes what it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from textual.pilot import Pilot
from textual.widgets import Log
from tui_stack import create_service, remove_stack, running_replicas, wait_for

from deployer.connectors import connect
from deployer.inventory import adhoc_host
from tui.app import MlopsApp, make_app
from tui.backend import DockerBackend, host_backend_factory
from tui.screens.logs import LogsScreen
from tui.screens.main import MainScreen
from tui.widgets.services_table import ServicesTable
from tui.widgets.tasks_table import TasksTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (150, 40)


@pytest.fixture
def stack(docker_api: docker.APIClient) -> Iterator[str]:
    name = f"tui-{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack(docker_api, name)


def local_backend(bed: dict[str, Any]) -> DockerBackend:
    return DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local")


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    """Let the app run until ``predicate()`` holds (fail with ``what`` after ``timeout`` s)."""
    steps = int(timeout / 0.2)
    for _ in range(steps):
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def main_screen(app: MlopsApp) -> MainScreen:
    for screen in app.screen_stack:
        if isinstance(screen, MainScreen):
            return screen
    raise AssertionError("no main screen")


def row_of(app: MlopsApp, short_name: str) -> list[str] | None:
    """The cells of a service's row as text (None if the row is not shown)."""
    table = main_screen(app).query_one(ServicesTable)
    for row_index in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(row_index)]
        if cells[0] == short_name:
            return cells
    return None


async def select(pilot: Pilot[None], app: MlopsApp, short_name: str) -> None:
    table = main_screen(app).query_one(ServicesTable)
    for row_index in range(table.row_count):
        if str(table.get_row_at(row_index)[0]) == short_name:
            table.move_cursor(row=row_index)
            await pilot.pause()
            return
    raise AssertionError(f"{short_name} not in the table")


async def test_services_appear_and_scale_keys_change_the_engine(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    web = create_service(docker_api, stack, "web")
    create_service(docker_api, stack, "idle", replicas=0)
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: (row_of(app, "web") or [""] * 3)[2] == "1/1", "web 1/1")
        assert (row_of(app, "idle") or [])[2] == "0/0"
        assert row_of(app, "web")[1] == "replicated"  # type: ignore[index]
        await scale_up_and_back(pilot, app, docker_api, web)


async def scale_up_and_back(pilot: Pilot[None], app: MlopsApp, api: docker.APIClient,
                            service_id: str, name: str = "web") -> None:
    """``+`` on the selected service takes it to 2 replicas on the engine and in the table,
    ``-`` back to 1."""
    await select(pilot, app, name)
    await _scale_key(pilot, app, api, service_id, name, "plus", 2)
    await _scale_key(pilot, app, api, service_id, name, "minus", 1)


async def _scale_key(pilot: Pilot[None], app: MlopsApp, api: docker.APIClient,
                     service_id: str, name: str, key: str, count: int) -> None:
    await pilot.press(key)
    wait_for(lambda: running_replicas(api, service_id)[1] == count, 30, what=f"desired {count}")
    await until(pilot, lambda: (row_of(app, name) or [""] * 3)[2] == f"{count}/{count}",
                f"{name} {count}/{count}")


async def test_scale_dialog(bed: dict[str, Any], docker_api: docker.APIClient, stack: str) -> None:
    web = create_service(docker_api, stack, "web", replicas=0)
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row_of(app, "web") is not None, "web row")
        await select(pilot, app, "web")
        await pilot.press("s", "backspace", "3", "enter")
        wait_for(lambda: running_replicas(docker_api, web)[1] == 3, 30, what="desired 3")
        await until(pilot, lambda: (row_of(app, "web") or [""] * 3)[2].endswith("/3"), "x/3")


async def test_logs_show_a_line_the_service_printed(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    marker = f"tui-marker-{uuid.uuid4().hex[:8]}"
    create_service(
        docker_api, stack, "talker", env={"HEARTBEAT_SECONDS": "0.5", "LOG_LINE": marker}
    )
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: (row_of(app, "talker") or [""] * 3)[2] == "1/1", "running")
        await select(pilot, app, "talker")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "logs screen")
        log = app.screen.query_one(Log)
        await until(pilot, lambda: any(marker in line for line in log.lines), "the marker line")
        # Filter narrows what is shown to matching lines only.
        await pilot.press("slash", *"alive|tui-marker")
        await pilot.pause(0.3)
        assert log.lines and all(marker in line for line in log.lines)
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back on main")


async def test_restart_replaces_the_task(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    web = create_service(docker_api, stack, "web")
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)

    def task_ids() -> set[str]:
        return {t["ID"] for t in docker_api.tasks(filters={"service": web})}

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: (row_of(app, "web") or [""] * 3)[2] == "1/1", "web 1/1")
        before = task_ids()
        await select(pilot, app, "web")
        await pilot.press("r")
        await pilot.press("y")
        wait_for(lambda: len(task_ids() - before) >= 1, 30, what="a new task")
        tasks_table = main_screen(app).query_one(TasksTable)
        await until(pilot, lambda: tasks_table.row_count >= 2, "old and new task on screen")
        forced = docker_api.inspect_service(web)["Spec"]["TaskTemplate"].get("ForceUpdate")
        assert forced == 1


async def test_remote_mode_over_ssh_shows_the_remote_services_only(
    bed: dict[str, Any],
    docker_api: docker.APIClient,
    remote_docker_api: docker.APIClient,
    stack: str,
) -> None:
    create_service(docker_api, stack, "only-local", replicas=0)
    try:
        create_service(remote_docker_api, stack, "only-remote", replicas=0)
        host = adhoc_host("bed-remote", ssh_config=bed["ssh_config"])
        backend = host_backend_factory(host)()
        app = make_app(backend, stack=stack, refresh_seconds=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: row_of(app, "only-remote") is not None, "remote service")
            assert row_of(app, "only-local") is None
            status = str(main_screen(app).query_one("#status").render())
            assert "10.250.0.2" in status and "connected" in status
    finally:
        remove_stack(remote_docker_api, stack)


def test_api_calls_per_refresh_do_not_grow_with_services(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    backend = local_backend(bed)
    api = backend.api
    calls: list[str] = []
    original = api.request

    def counting(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"{method} {url}")
        return original(method, url, *args, **kwargs)

    api.request = counting  # type: ignore[method-assign]
    counts = {}
    for total in (2, 12):
        while (
            len(docker_api.services(filters={"label": f"com.docker.stack.namespace={stack}"}))
            < total
        ):
            n = len(docker_api.services(filters={"label": f"com.docker.stack.namespace={stack}"}))
            create_service(docker_api, stack, f"s{n}", replicas=0)
        calls.clear()
        snapshot = backend.snapshot(stack)
        assert len(snapshot.services) == total
        counts[total] = len(calls)
    backend.close()
    assert counts[2] == counts[12] <= 3, counts


async def test_a_dropped_ssh_connection_shows_and_recovers(
    bed: dict[str, Any], remote_docker_api: docker.APIClient, stack: str
) -> None:
    try:
        create_service(remote_docker_api, stack, "svc", replicas=0)
        backend = host_backend_factory(adhoc_host("bed-remote", ssh_config=bed["ssh_config"]))()
        assert isinstance(backend, DockerBackend)
        app = make_app(backend, stack=stack, refresh_seconds=0.5)
        seen: list[str] = []
        lost = app.connection_lost
        app.connection_lost = lambda reason: (seen.append(reason), lost(reason))[-1]  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: row_of(app, "svc") is not None, "remote service")
            # Cut the SSH connection under the dashboard (as a network drop would).
            backend.connector.close()
            await until(pilot, lambda: bool(seen), "the loss to be reported")
            await until(pilot, lambda: app.connection == "connected", "reconnection")
            status = str(main_screen(app).query_one("#status").render())
            assert "connected" in status and "lost" not in status
            assert row_of(app, "svc") is not None
    finally:
        remove_stack(remote_docker_api, stack)


async def test_a_refused_action_is_reported_in_a_toast(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    create_service(docker_api, stack, "fresh", replicas=0)
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row_of(app, "fresh") is not None, "fresh row")
        await select(pilot, app, "fresh")
        await pilot.press("b", "y")  # never updated: nothing to roll back to

        def toasts() -> list[str]:
            return [n.message for n in app._notifications]

        await until(pilot, lambda: any("no previous spec" in m for m in toasts()), "toast")
        assert isinstance(app.screen, MainScreen), "a refused action is no fatal error"
