"""The dashboard's Models view against the bed's real MLflow (S3 artifacts) and a real
sklearn-model service (Pilot): the served model, version and metrics; the registry's versions;
promoting a version to champion through the deployer's action (lock, audit line), after which
the service switches within its poll interval and the view shows it. Locally, then over SSH to
the namespace manager, which reaches MLflow and the service through its own SSH channel.

The namespace reaches this machine at the bed's veth address (10.250.0.1) only: two bounded TCP
relays there stand for "the manager's published ports" (they relay to the loopback-bound MLflow
and service, and stop with the test).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

sys.path.insert(0, str(Path(__file__).parent / "services"))
from model_fixtures import bed_service_env, titanic_csv  # noqa: E402,F401
from svcutil import ServiceProcess, free_port  # noqa: E402

from deployer.actions.models import Endpoint  # noqa: E402
from deployer.connectors import Connector, connect  # noqa: E402
from deployer.inventory import adhoc_host  # noqa: E402
from deployer.state import read_state  # noqa: E402
from tui.app import MlopsApp, make_app  # noqa: E402
from tui.backend import DockerBackend, host_backend_factory  # noqa: E402
from tui.screens.dialogs import ConfirmDialog  # noqa: E402
from tui.screens.models import ModelsScreen  # noqa: E402
from tui.widgets.models_tables import ServedTable, VersionsTable  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (170, 40)
VETH_HOST = "10.250.0.1"  # the bed's host end of the namespace link (scripts/testbed.py)


class Relay:
    """A TCP relay listening on ``VETH_HOST`` to a loopback port; at most ``limit`` connections,
    closed by ``stop``."""

    def __init__(self, target: int, limit: int = 2000) -> None:
        self._target = target
        self._left = limit
        self._server = socket.create_server((VETH_HOST, 0))
        self._server.settimeout(0.5)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set() and self._left > 0:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            self._left -= 1
            upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@pytest.fixture(scope="module")
def model_name() -> str:
    return f"tm-titanic-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def served(model_name: str, bed_service_env: dict[str, str],  # noqa: F811
           titanic_csv: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
           ) -> Iterator[ServiceProcess]:
    """A real sklearn-model service that trained and registered version 1 (champion), polling
    the alias every second; then version 2 registered from the same run."""
    from mlflow.tracking import MlflowClient

    env = {**bed_service_env, "MODEL_NAME": model_name, "MLFLOW_EXPERIMENT_NAME": model_name,
           "TITANIC_CSV": str(titanic_csv), "TRAIN_IF_MISSING": "true",
           "MODEL_POLL_SECONDS": "1", "N_ESTIMATORS": "20",
           "MODEL_DIR": str(tmp_path_factory.mktemp("models"))}
    service = ServiceProcess("sklearn-model", free_port(), env, tmp_path_factory.mktemp("logs"))
    service.start(timeout_s=240)
    try:
        # Healthy while it trains: ready once version 1 is registered and loaded.
        deadline = time.monotonic() + 240
        while not _answers(service.url + "/model"):
            assert time.monotonic() < deadline, f"no model served:\n{service.logs()[-3000:]}"
            time.sleep(1)
        client = MlflowClient(bed_service_env["MLFLOW_TRACKING_URI"])
        first = client.get_model_version_by_alias(model_name, "champion")
        client.create_model_version(model_name, first.source, run_id=first.run_id,
                                    model_id=first.source.removeprefix("models:/"))
        yield service
    finally:
        service.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str,
                timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.25)):
        if predicate():
            return
        await pilot.pause(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def served_version(screen: ModelsScreen) -> str:
    table = screen.query_one(ServedTable)
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        if cells[0] == "sklearn-model":
            return cells[2]
    return ""


def version_rows(screen: ModelsScreen) -> dict[str, list[str]]:
    table = screen.query_one(VersionsTable)
    out = {}
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        out[cells[1]] = cells
    return out


async def select_version(pilot: Pilot[None], screen: ModelsScreen, version: str) -> None:
    table = screen.query_one(VersionsTable)
    for i in range(table.row_count):
        if str(table.get_row_at(i)[1]) == version:
            table.move_cursor(row=i)
            await pilot.pause()
            return
    raise AssertionError(f"version {version} not listed")


def audit(conn: Connector, stack: str) -> list[dict[str, Any]]:
    state = read_state(conn, stack, with_services=False)
    raw = conn.get_file(f"{state.stack_dir}/audit.log") or b""
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


async def promote_in_view(app: MlopsApp, pilot: Pilot[None], version: str,
                          other: str) -> ModelsScreen:
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, ModelsScreen), "the models screen")
    screen = app.screen
    assert isinstance(screen, ModelsScreen)
    await until(pilot, lambda: served_version(screen) == other, f"version {other} served",
                timeout=90)
    rows = version_rows(screen)
    assert set(rows) >= {"1", "2"}
    assert "champion" in rows[other][2] and rows[other][3] == "sklearn-model"
    assert "accuracy" in rows["1"][6]  # the training run's held-out metrics
    await select_version(pilot, screen, version)
    await pilot.press("p")
    assert isinstance(app.screen, ConfirmDialog)
    await pilot.press("y")
    # The alias moved in MLflow, the service polled it and now serves the promoted version.
    await until(pilot, lambda: served_version(screen) == version,
                f"the service switching to version {version}", timeout=90)
    await until(pilot, lambda: "champion" in version_rows(screen)[version][2], "alias shown")
    return screen


async def test_promote_locally_then_over_ssh(bed: dict[str, Any], served: ServiceProcess,
                                             model_name: str) -> None:
    stack = f"tm-{uuid.uuid4().hex[:6]}"
    local = connect(None, docker_host=bed["docker_host"])
    mlflow_port = int(bed["mlflow"]["tracking_uri"].rsplit(":", 1)[1])
    endpoints = {"mlflow-server": Endpoint("127.0.0.1", mlflow_port),
                 "sklearn-model": Endpoint("127.0.0.1", served.port)}
    backend = DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local",
                            endpoints=endpoints)
    app = make_app(backend, stack=stack, refresh_seconds=0.5)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await promote_in_view(app, pilot, "2", other="1")
        lines = [a for a in audit(local, stack) if a["action"] == "promote-model"]
        assert [(a["model"], a["version"], a["previous"], a["alias"]) for a in lines] == [
            (model_name, "2", "1", "champion")]
    finally:
        local.run(["rm", "-rf", read_state(local, stack, with_services=False).stack_dir])
        local.close()

    # Over SSH: the namespace manager reaches MLflow and the service at "its" ports only.
    relays = [Relay(mlflow_port), Relay(served.port)]
    remote_endpoints = {"mlflow-server": Endpoint(VETH_HOST, relays[0].port),
                        "sklearn-model": Endpoint(VETH_HOST, relays[1].port)}
    host = adhoc_host("bed-remote", ssh_config=bed["ssh_config"])
    remote = host_backend_factory(host, remote_endpoints)()
    assert isinstance(remote, DockerBackend)
    app = make_app(remote, stack=stack, refresh_seconds=0.5)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await promote_in_view(app, pilot, "1", other="2")
            assert type(remote.connector).__name__ == "SSHConnector"
            lines = [a for a in audit(remote.connector, stack) if a["action"] == "promote-model"]
            assert [(a["version"], a["previous"]) for a in lines] == [("1", "2")]
            remote.connector.run(["rm", "-rf", read_state(remote.connector, stack,
                                                          with_services=False).stack_dir])
    finally:
        for relay in relays:
            relay.stop()
