"""Dashboard actions on the test bed's real Swarm (Pilot): remove with confirmation, the `a`
toggle, the inventory host picker (local engine -> namespace manager over SSH), rollback, and
the drift write-back to the values file; plus the write-back's text edits as pure tests.

Stacks are `tui2-*`; every test removes what it created.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList
from tui_stack import STANDIN, create_service, remove_stack, wait_for

from deployer.connectors import connect
from deployer.errors import ConfigError, ValuesError
from deployer.inventory import select_hosts
from tui.app import MlopsApp, make_app
from tui.backend import DockerBackend, host_backend_factory
from tui.drift import declared_replicas
from tui.screens.dialogs import ConfirmDialog
from tui.screens.hosts import HostPicker
from tui.screens.main import MainScreen
from tui.values_edit import (
    apply_replicas_edit,
    plan_replicas_edit,
    set_overrides_replicas,
    target_file,
)
from tui.widgets.services_table import ServicesTable

STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
SIZE = (150, 40)


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def stack(docker_api: docker.APIClient) -> Iterator[str]:
    name = f"tui2-{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack(docker_api, name)


def local_backend(bed: dict[str, Any]) -> DockerBackend:
    return DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local")


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def main_screen(app: MlopsApp) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


def names_shown(app: MlopsApp) -> list[str]:
    table = main_screen(app).query_one(ServicesTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def row_of(app: MlopsApp, name: str) -> list[str] | None:
    table = main_screen(app).query_one(ServicesTable)
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        if cells[0] == name:
            return cells
    return None


async def select(pilot: Pilot[None], app: MlopsApp, name: str) -> None:
    table = main_screen(app).query_one(ServicesTable)
    table.focus()
    for i in range(table.row_count):
        if str(table.get_row_at(i)[0]) == name:
            table.move_cursor(row=i)
            await pilot.pause()
            return
    raise AssertionError(f"{name} not in the table")


def toasts(app: MlopsApp) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


def service_env(api: docker.APIClient, service_id: str) -> dict[str, str]:
    spec = api.inspect_service(service_id)["Spec"]
    env = spec["TaskTemplate"]["ContainerSpec"].get("Env") or []
    return dict(item.split("=", 1) for item in env)


# ---------------------------------------------------------------------------------------------
# remove, toggle, rollback, host picker


@pytest.mark.e2e
@pytest.mark.slow
async def test_remove_asks_first_then_removes_in_the_engine(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    doomed = create_service(docker_api, stack, "doomed", replicas=0)
    create_service(docker_api, stack, "keeper", replicas=0)
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "doomed" in names_shown(app), "doomed row")
        await select(pilot, app, "doomed")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # cancelled: nothing happens
        await pilot.pause(1.0)
        assert docker_api.services(filters={"id": doomed})
        assert "doomed" in names_shown(app)
        await select(pilot, app, "doomed")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        wait_for(lambda: not docker_api.services(filters={"id": doomed}), 30, what="removal")
        await until(pilot, lambda: "doomed" not in names_shown(app), "row gone")
        assert "keeper" in names_shown(app)
        assert any(t == "remove" and "doomed removed" in m for t, m in toasts(app))


@pytest.mark.e2e
@pytest.mark.slow
async def test_toggle_shows_services_outside_the_stack(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    create_service(docker_api, stack, "member", replicas=0)
    loner_name = f"{stack}-loner"
    loner = docker_api.create_service(
        docker.types.TaskTemplate(container_spec=docker.types.ContainerSpec(image=STANDIN)),
        name=loner_name,
        mode=docker.types.ServiceMode("replicated", replicas=0),
    )["ID"]
    try:
        app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
        async with app.run_test(size=SIZE) as pilot:
            main = main_screen(app)
            await until(pilot, lambda: "member" in names_shown(app), "stack service")
            assert loner_name not in names_shown(app)
            await pilot.press("a")
            await until(pilot, lambda: loner_name in names_shown(app), "the non-stack service")
            # Stack members keep their full name when every service is shown.
            assert f"{stack}_member" in names_shown(app) or "member" in names_shown(app)
            title = str(main.query_one("#services-title").render())
            assert "all services" in title
            await pilot.press("a")
            await until(pilot, lambda: loner_name not in names_shown(app), "stack only again")
            assert "member" in names_shown(app)
            assert f"stack {stack}" in str(main.query_one("#services-title").render())
    finally:
        docker_api.remove_service(loner)


@pytest.mark.e2e
@pytest.mark.slow
async def test_rollback_restores_the_previous_env(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    web = create_service(docker_api, stack, "web", replicas=0, env={"VERSION": "1"})
    for version in ("2", "3"):
        subprocess.run(
            ["docker", "-H", bed["docker_host"], "service", "update", "--detach",
             "--env-add", f"VERSION={version}", f"{stack}_web"],
            check=True, capture_output=True,
        )
    wait_for(lambda: service_env(docker_api, web)["VERSION"] == "3", 30, what="VERSION=3")
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "web" in names_shown(app), "web row")
        await select(pilot, app, "web")
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        wait_for(lambda: service_env(docker_api, web)["VERSION"] == "2", 30, what="VERSION=2")
        await until(pilot, lambda: any(t == "rollback" for t, _ in toasts(app)), "the toast")
        await until(
            pilot, lambda: "rollback" in ((row_of(app, "web") or [""] * 6)[5]), "update state"
        )


@pytest.mark.e2e
@pytest.mark.slow
async def test_host_picker_switches_from_local_to_the_namespace_manager(
    bed: dict[str, Any],
    docker_api: docker.APIClient,
    remote_docker_api: docker.APIClient,
    stack: str,
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "inventory.yaml"
    # The first host is the one shown at start: the local engine.
    inventory.write_text(
        "hosts:\n  laptop: {connection: local}\n  bed-loopback: {}\n  bed-remote: {}\n"
    )
    hosts = select_hosts(inventory=str(inventory), ssh_config=bed["ssh_config"])
    choices = [(h.label, host_backend_factory(h)) for h in hosts]
    create_service(docker_api, stack, "only-local", replicas=0)
    try:
        create_service(remote_docker_api, stack, "only-remote", replicas=0)
        app = make_app(choices[0][1](), stack=stack, refresh_seconds=0.5, hosts=choices)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "only-local" in names_shown(app), "the local service")
            await pilot.press("h")
            assert isinstance(app.screen, HostPicker)
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt)
                      for i in range(options.option_count)]
            remote_index = next(i for i, label in enumerate(labels) if "10.250.0.2" in label)
            assert labels[0] == "local"
            options.focus()
            for _ in range(remote_index):
                await pilot.press("down")
            await pilot.press("enter")
            await until(pilot, lambda: "only-remote" in names_shown(app), "the remote service")
            assert "only-local" not in names_shown(app)
            status = str(main_screen(app).query_one("#status").render())
            assert "10.250.0.2" in status and "connected" in status
    finally:
        remove_stack(remote_docker_api, stack)


# ---------------------------------------------------------------------------------------------
# drift write-back


def overlay(tmp: Path, text: str) -> Path:
    path = tmp / "values.mine.yaml"
    path.write_text(text)
    return path


MINE = """\
# my overlay: keep these comments
stack:
  name: {stack}   # the test stack

services:
  llm-connector:
    # one is plenty for a laptop
    replicas: 1      # scale here
    published_port: 21520
"""


@pytest.mark.e2e
@pytest.mark.slow
async def test_drift_write_back_edits_only_the_scalar(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str, tmp_path: Path
) -> None:
    create_service(docker_api, stack, "llm-connector", replicas=0)
    mine = overlay(tmp_path, MINE.format(stack=stack))
    files = [STANDIN_VALUES, mine]
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5,
                   declared_replicas=declared_replicas(files), values_files=files)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: (row_of(app, "llm-connector") or [""] * 8)[7] == "drift: 1",
                    "the drift")
        await select(pilot, app, "llm-connector")
        await pilot.press("w")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause(0.5)
        assert mine.read_text() == MINE.format(stack=stack)
        await pilot.press("w", "y")
        await until(pilot, lambda: (row_of(app, "llm-connector") or ["x"] * 8)[7] == "",
                    "the drift to go")
        expected = MINE.format(stack=stack).replace(
            "replicas: 1      # scale here", "replicas: 0      # scale here"
        )
        assert mine.read_text() == expected
        assert any(t == "write replicas" and f"{mine}:8" in m for t, m in toasts(app))
        assert "differ" not in str(main_screen(app).query_one("#services-title").render())


@pytest.mark.e2e
@pytest.mark.slow
async def test_drift_write_back_refused_without_values_file(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    create_service(docker_api, stack, "llm-connector", replicas=0)
    app = make_app(local_backend(bed), stack=stack, refresh_seconds=0.5,
                   declared_replicas={"llm-connector": 1})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row_of(app, "llm-connector") is not None, "the row")
        await select(pilot, app, "llm-connector")
        await pilot.press("w")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        assert any("without -f" in m for _, m in toasts(app))


def test_edit_keeps_comments_and_reloads(tmp_path: Path) -> None:
    mine = overlay(tmp_path, MINE.format(stack="tui2-unit"))
    files = [STANDIN_VALUES, mine]
    edit = plan_replicas_edit(target_file(files, "llm-connector"), "llm-connector", 3)
    assert (edit.path, edit.line, edit.old) == (mine, 8, 1)
    declared = apply_replicas_edit(edit, files)
    assert declared["llm-connector"] == 3
    text = mine.read_text()
    assert text == MINE.format(stack="tui2-unit").replace("replicas: 1 ", "replicas: 3 ")
    assert "# one is plenty for a laptop" in text and "# scale here" in text


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # key absent under a block-style service: a line right below the service key
        ("services:\n  cnn-image:\n    # the port\n    published_port: 21530\n", 3),
        # flow-style service mapping
        ("services:\n  cnn-image: {published_port: 21530}\n", 2),
        # service absent
        ("services:\n  # first the model\n  sklearn-model:\n    replicas: 1\n", 3),
        # no services block at all (and no final newline)
        ("stack: {name: tui2-unit}", 4),
    ],
)
def test_edit_adds_the_key_where_the_file_lacks_it(tmp_path: Path, text: str, line: int) -> None:
    mine = overlay(tmp_path, text)
    files = [STANDIN_VALUES, mine]
    edit = plan_replicas_edit(target_file(files, "cnn-image"), "cnn-image", 2)
    assert edit.old is None and edit.line == line
    declared = apply_replicas_edit(edit, files)
    assert declared["cnn-image"] == 2
    written = mine.read_text()
    assert written.splitlines()[line - 1].strip().startswith(("replicas: 2", "cnn-image: {"))
    # every original line is still there, in order
    original = [x for x in text.splitlines() if x]
    kept = [x for x in written.splitlines() if x in original]
    assert kept == original or "{" in text


def test_target_is_the_last_file_setting_the_key(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("services:\n  minio:\n    replicas: 1\n")
    b = tmp_path / "b.yaml"
    b.write_text("stack: {name: x}\n")
    assert target_file([STANDIN_VALUES, a, b], "minio") == a
    assert target_file([STANDIN_VALUES, a, b], "cnn-image") == b
    with pytest.raises(ConfigError, match="without -f"):
        target_file([], "minio")


def test_invalid_result_restores_the_original(tmp_path: Path) -> None:
    mine = overlay(tmp_path, "services:\n  minio:\n    replicas: 1\n")
    files = [STANDIN_VALUES, mine]
    edit = plan_replicas_edit(mine, "minio", 101)  # the schema allows 0-100
    with pytest.raises(ConfigError, match="original was restored"):
        apply_replicas_edit(edit, files)
    assert mine.read_text() == "services:\n  minio:\n    replicas: 1\n"


def test_changed_file_and_set_override_are_refused(tmp_path: Path) -> None:
    mine = overlay(tmp_path, "services:\n  minio:\n    replicas: 1\n")
    edit = plan_replicas_edit(mine, "minio", 2)
    mine.write_text("services:\n  minio:\n    replicas: 4\n")
    with pytest.raises(ConfigError, match="changed since"):
        apply_replicas_edit(edit, [mine])
    assert mine.read_text().endswith("replicas: 4\n")
    assert set_overrides_replicas(["services.minio.replicas=3"], "minio") == (
        "services.minio.replicas=3"
    )
    assert set_overrides_replicas(["services.minio.port=3"], "minio") is None
    bad = overlay(tmp_path, "services: [1, 2]\n")
    with pytest.raises(ValuesError, match="not a mapping"):
        plan_replicas_edit(bad, "minio", 2)
