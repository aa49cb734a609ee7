"""Deploy from the dashboard (`D` check, `d` push) on the test bed's real Swarm, via Pilot.

The push is the deployer's own (``Pusher``) run in a worker of the main screen; the test checks
the engine, the deploy screen (steps and per-service progress) and the final toast. Stacks are
`tui2-*`, host ports 21500-21599; everything created is removed afterwards.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from textual.widgets import DataTable, Log
from tui_stack import wait_for

from deployer.inventory import Host
from tui.app import MlopsApp, make_app
from tui.backend import host_backend_factory
from tui.deploy import DeployResult, ServiceProgressed, StepReported
from tui.screens.deploy import DeployScreen
from tui.screens.dialogs import ConfirmDialog
from tui.screens.main import MainScreen

RECORDING = Path(__file__).parent / "data" / "swarm_tui_rec.json"
STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
SIZE = (150, 40)
STACK_LABEL = "com.docker.stack.namespace"


def overlay(tmp: Path, stack: str, base_port: int) -> Path:
    """Two running services (llm-connector, minio), the others at 0 replicas."""
    services: dict[str, Any] = {}
    for offset, name in enumerate(
        ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
    ):
        services[name] = {"published_port": base_port + offset}
        if name != "llm-connector":
            services[name]["replicas"] = 0
    services["minio"] = {"published_port": base_port + 5, "published_console_port": base_port + 6}
    path = tmp / f"{stack}.yaml"
    path.write_text(yaml.safe_dump({"stack": {"name": stack}, "services": services}))
    return path


@pytest.fixture
def deploy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The Gemini key the push needs, and a private state directory for the local manager."""
    monkeypatch.setenv("GOOGLE_API_KEY", "tui2-test-key-" + uuid.uuid4().hex)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.chdir(tmp_path)  # no stray ./.env is read
    return state


@pytest.fixture
def stack(docker_api: docker.APIClient, bed: dict[str, Any]) -> Iterator[str]:
    name = f"tui2-{uuid.uuid4().hex[:6]}"
    yield name
    subprocess.run(["docker", "-H", bed["docker_host"], "stack", "rm", name],
                   capture_output=True, check=False)
    wait_for(lambda: not docker_api.containers(filters={"label": f"{STACK_LABEL}={name}"}),
             60, what="the stack's containers to go")
    for secret in docker_api.secrets(filters={"label": f"io.mlops.stack={name}"}):
        try:
            docker_api.remove_secret(secret["ID"])
        except docker.errors.APIError:
            pass
    for config in docker_api.configs(filters={"label": f"io.mlops.stack={name}"}):
        try:
            docker_api.remove_config(config["ID"])
        except docker.errors.APIError:
            pass


def stack_services(api: docker.APIClient, stack: str) -> list[str]:
    return sorted(
        s["Spec"]["Name"] for s in api.services(filters={"label": f"{STACK_LABEL}={stack}"})
    )


def main_screen(app: MlopsApp) -> MainScreen:
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


def toasts(app: MlopsApp) -> list[tuple[str, str]]:
    """(title, message) of the notifications shown so far."""
    return [(n.title, n.message) for n in app._notifications]


async def finished(
    pilot: Any, app: MlopsApp, previous: object = None, timeout: float = 240
) -> DeployResult:
    """Wait for a deploy result other than ``previous`` (the one of an earlier run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = main_screen(app).deploy_result
        if result is not None and result is not previous:
            await pilot.pause()
            return result
        await pilot.pause(0.3)
    raise AssertionError("the deploy did not finish")


def local_app(files: list[Path], stack: str, sets: list[str] | None = None) -> MlopsApp:
    backend = host_backend_factory(Host("local", None))()
    return make_app(backend, stack=stack, refresh_seconds=1, values_files=files,
                    value_sets=sets or [])


@pytest.mark.e2e
@pytest.mark.slow
async def test_check_then_deploy_then_noop(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str, deploy_env: Path,
    tmp_path: Path,
) -> None:
    files = [STANDIN_VALUES, overlay(tmp_path, stack, 21500)]
    app = local_app(files, stack)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        # `D`: the plan only, no confirmation needed, nothing changes.
        await pilot.press("D")
        result = await finished(pilot, app)
        main = main_screen(app)
        assert result.check and result.outcome == "changed", result
        assert "stack-deploy " + stack in result.steps
        assert isinstance(app.screen, DeployScreen)
        assert stack_services(docker_api, stack) == []
        assert not (deploy_env / stack).exists() or not list((deploy_env / stack).iterdir())
        log_text = "\n".join(app.screen.query_one("#deploy-log", Log).lines)
        assert "would change: stack-deploy" in log_text
        assert any(t == "deploy check: changed" for t, _ in toasts(app))
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)

        # `d` asks first; "no" leaves everything as it is.
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert main.deploy_result is result and isinstance(app.screen, MainScreen)

        # `d` + yes: the real push, with progress per service.
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, DeployScreen)
        result = await finished(pilot, app, result)
        assert not result.check and result.outcome == "changed", result
        assert "revision 1" in result.reason
        names = stack_services(docker_api, stack)
        assert f"{stack}_llm-connector" in names and f"{stack}_minio" in names
        progress = [e for e in main.deploy_events if isinstance(e, ServiceProgressed)]
        assert {"llm-connector", "minio"} <= {e.service for e in progress}
        assert any(e.service == "llm-connector" and e.converged for e in progress)
        steps = [e for e in main.deploy_events if isinstance(e, StepReported)]
        assert [s.kind for s in steps if s.status == "changed"][-1] == "record"
        table = app.screen.query_one("#deploy-services", DataTable)
        rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1])
                for i in range(table.row_count)}
        assert rows.get("llm-connector") == "1/1"
        status = str(app.screen.query_one("#deploy-status").render())
        assert "changed" in status and stack in status
        assert any(t == "deploy: changed" for t, _ in toasts(app))
        await pilot.press("escape")

        # Same values again: ok, nothing deployed (the deployer's no-op path).
        await pilot.press("d", "y")
        result = await finished(pilot, app, result)
        assert result.outcome == "ok", result
        assert "unchanged" in result.reason
        assert any(t == "deploy: ok" for t, _ in toasts(app))


@pytest.mark.e2e
@pytest.mark.slow
async def test_deploy_failures_say_why(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str, deploy_env: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = [STANDIN_VALUES, overlay(tmp_path, stack, 21510)]
    # The values name another stack than the one on screen: refused before any change.
    app = local_app(files, stack, sets=["stack.name=tui2-elsewhere"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d", "y")
        result = await finished(pilot, app, timeout=60)
        assert result.outcome == "failed"
        assert "tui2-elsewhere" in result.reason and stack in result.reason
        assert any(t == "deploy: failed" and "tui2-elsewhere" in m for t, m in toasts(app))
    # No Gemini key: the deployer's own error, with its fix, in the toast.
    monkeypatch.delenv("GOOGLE_API_KEY")
    app = local_app(files, stack)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("D")
        result = await finished(pilot, app, timeout=60)
        assert result.outcome == "failed"
        assert "GOOGLE_API_KEY" in result.reason
        status = str(app.screen.query_one("#deploy-status").render())
        assert "failed" in status and "GOOGLE_API_KEY" in status
    assert stack_services(docker_api, stack) == []


def test_deploy_screen_snapshot(snap_compare: Any) -> None:
    """The progress screen from recorded events (steps, services converging, the outcome)."""
    from tui.deploy import DeployRequest, InfoReported
    from tui.replay import ReplayBackend

    events = [
        StepReported("changed", "create-secret", "google_api_key_3f2a9c1b7d20"),
        StepReported("changed", "upload", "revision 2", "stack file + metadata"),
        StepReported("changed", "stack-deploy", "tui2-demo", "values changed"),
        ServiceProgressed("llm-connector", "0/1", "starting", "updating", False),
        ServiceProgressed("minio", "1/1", "healthy", "", True),
        InfoReported("llm-connector      1/1      healthy"),
        ServiceProgressed("llm-connector", "1/1", "healthy", "completed", True),
        ServiceProgressed("bucket-init", "0/1 (1/1 completed)", "complete", "", True),
        StepReported("changed", "wait", "tui2-demo", "converged"),
        StepReported("changed", "record", "revision 2"),
    ]
    result = DeployResult("changed", "tui2-demo", "local", False, "revision 2: values changed",
                          tuple(f"{e.kind} {e.target}" for e in events
                                if isinstance(e, StepReported)))

    async def show(pilot: Any) -> None:
        app = pilot.app
        await pilot.pause(0.2)
        main = main_screen(app)
        main.deploy_request = DeployRequest("tui2-demo", ("values.yaml",), check=False)
        main.deploy_events = events
        main.deploy_result = result
        main._show_deploy()
        await pilot.pause(0.3)

    app = make_app(ReplayBackend.from_file(RECORDING), stack="tui-rec", refresh_seconds=3600)
    assert snap_compare(app, terminal_size=SIZE, run_before=show)
