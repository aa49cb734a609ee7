"""Dashboard actions are the deployer's actions (Pilot, real Swarm, real SSH): each scale,
restart, rollback and remove takes the stack's deploy lock and leaves its line in the stack's
audit log; one while another run holds the lock is refused, naming the holder; the logs screen
reads with the very reader `deployer logs` uses, locally and over SSH.

Stacks are `tui3-*`; every test removes what it created, state directory included.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from textual.pilot import Pilot
from tui_stack import create_service, remove_stack, running_replicas, wait_for

from deployer.actions.logs import LogStream
from deployer.connectors import Connector, connect
from deployer.inventory import adhoc_host
from deployer.lock import DeployLock
from deployer.logs import LogOptions, logs_argv
from deployer.state import read_state, who
from tui.app import MlopsApp, make_app
from tui.backend import DockerBackend, host_backend_factory
from tui.screens.dialogs import ConfirmDialog
from tui.screens.logs import TAIL_SIZES, LogsScreen
from tui.screens.main import MainScreen
from tui.widgets.services_table import ServicesTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (150, 40)


@pytest.fixture
def local(bed: dict[str, Any]) -> Iterator[Connector]:
    conn = connect(None, docker_host=bed["docker_host"])
    yield conn
    conn.close()


@pytest.fixture
def stack(docker_api: docker.APIClient, local: Connector) -> Iterator[str]:
    name = f"tui3-{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack(docker_api, name)
    state = read_state(local, name, with_services=False)
    local.run(["rm", "-rf", state.stack_dir])


def audit_lines(conn: Connector, stack: str) -> list[dict[str, Any]]:
    state = read_state(conn, stack, with_services=False)
    raw = conn.get_file(f"{state.stack_dir}/audit.log") or b""
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str,
                timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def main_screen(app: MlopsApp) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


async def select(pilot: Pilot[None], app: MlopsApp, name: str) -> None:
    await until(pilot, lambda: name in shown(app), f"{name} row")
    table = main_screen(app).query_one(ServicesTable)
    table.focus()
    for i in range(table.row_count):
        if str(table.get_row_at(i)[0]) == name:
            table.move_cursor(row=i)
            await pilot.pause()
            return


def shown(app: MlopsApp) -> list[str]:
    table = main_screen(app).query_one(ServicesTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def toasts(app: MlopsApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_each_dashboard_action_takes_the_lock_and_writes_its_audit_line(
    bed: dict[str, Any], docker_api: docker.APIClient, local: Connector, stack: str
) -> None:
    web = create_service(docker_api, stack, "web", replicas=1, env={"VERSION": "1"})
    create_service(docker_api, stack, "spare", replicas=0)
    subprocess.run(["docker", "-H", bed["docker_host"], "service", "update", "--detach",
                    "--env-add", "VERSION=2", f"{stack}_web"], check=True, capture_output=True)
    backend = DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local")
    app = make_app(backend, stack=stack, refresh_seconds=0.5)
    actions = lambda: [line["action"] for line in audit_lines(local, stack)]  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "web")
        await pilot.press("plus")
        wait_for(lambda: running_replicas(docker_api, web)[1] == 2, 30, what="desired 2")
        await until(pilot, lambda: actions() == ["scale"], "the scale's audit line")
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await until(pilot, lambda: actions()[-1:] == ["restart"], "the restart's audit line")
        await pilot.press("b", "y")
        await until(pilot, lambda: actions()[-1:] == ["rollback-service"], "the rollback's line")
        await select(pilot, app, "spare")
        await pilot.press("x", "y")
        await until(pilot, lambda: actions()[-1:] == ["remove-service"], "the removal's line")
        await until(pilot, lambda: "spare" not in shown(app), "spare gone from the table")
    lines = audit_lines(local, stack)
    assert [line["action"] for line in lines] == ["scale", "restart", "rollback-service",
                                                  "remove-service"]
    assert lines[0]["services"] == {"web": 2}
    assert lines[1]["services"] == ["web"] and lines[2]["service"] == "web"
    assert lines[3]["services"] == ["spare"]
    assert all(line["who"] == who() and line["time"] for line in lines)
    # No lock is left behind by any of them.
    assert read_state(local, stack, with_services=False).lock is None


async def test_a_dashboard_action_while_a_cli_run_holds_the_lock_is_refused_naming_it(
    bed: dict[str, Any], docker_api: docker.APIClient, local: Connector, stack: str
) -> None:
    web = create_service(docker_api, stack, "web", replicas=1)
    holder = connect(None, docker_host=bed["docker_host"])
    lock = DeployLock(holder, read_state(holder, stack, with_services=False)).acquire()
    try:
        backend = DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local")
        app = make_app(backend, stack=stack, refresh_seconds=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, "web")
            await pilot.press("plus")
            await until(pilot, lambda: any("being deployed by" in t for t in toasts(app)),
                        "the refusal")
            refusal = next(t for t in toasts(app) if "being deployed by" in t)
            assert who() in refusal and "--break-lock" in refusal
    finally:
        lock.release()
        holder.close()
    assert running_replicas(docker_api, web)[1] == 1  # nothing changed
    assert audit_lines(local, stack) == []


async def _logs_reader_of(app: MlopsApp, pilot: Pilot[None], marker: str) -> LogsScreen:
    await select(pilot, app, "talker")
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs screen")
    screen = app.screen
    assert isinstance(screen, LogsScreen)
    await until(pilot, lambda: any(marker in line.text for line in screen._lines),
                "the marker line", timeout=90)
    return screen


@pytest.mark.parametrize("where", ["local", "ssh"])
async def test_the_logs_screen_reads_with_the_deployer_logs_reader(
    bed: dict[str, Any], docker_api: docker.APIClient, remote_docker_api: docker.APIClient,
    where: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = docker_api if where == "local" else remote_docker_api
    name = f"tui3-{uuid.uuid4().hex[:6]}"
    marker = f"tui3-marker-{uuid.uuid4().hex[:8]}"
    opened: list[LogStream] = []
    original = LogStream.start

    def spy(self: LogStream) -> LogStream:
        opened.append(self)
        return original(self)

    monkeypatch.setattr(LogStream, "start", spy)
    try:
        create_service(api, name, "talker", env={"HEARTBEAT_SECONDS": "0.5", "LOG_LINE": marker})
        if where == "local":
            backend = DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]),
                                    "local")
        else:
            host = adhoc_host("bed-remote", ssh_config=bed["ssh_config"])
            backend = host_backend_factory(host)()  # type: ignore[assignment]
        app = make_app(backend, stack=name, refresh_seconds=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await _logs_reader_of(app, pilot, marker)
            # One reader, `deployer logs`' own, over this backend's connector (SSH or local).
            assert len(opened) == 1
            assert opened[0]._conn is backend.connector
            assert type(backend.connector).__name__ == (
                "LocalConnector" if where == "local" else "SSHConnector")
            assert opened[0].argvs == [logs_argv(f"{name}_talker",
                                                 LogOptions(follow=True, tail=TAIL_SIZES[0]))]
            await pilot.press("escape")
    finally:
        remove_stack(api, name)
