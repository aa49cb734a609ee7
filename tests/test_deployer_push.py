"""`deployer push` end to end: real Swarm managers of the test bed, over real SSH."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from deployer.cli import main
from deployer.facts import service_versions
from deployer.lock import DeployLock
from deployer.state import read_state

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
SECRET = "dp-test-gemini-key-" + uuid.uuid4().hex


def _stack_values(tmp: Path, stack: str, base_port: int) -> Path:
    # Small: two running services (llm-connector, minio), the others scaled to 0.
    services: dict[str, Any] = {}
    for offset, name in enumerate(
        ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
    ):
        services[name] = {"published_port": base_port + offset}
        if name != "llm-connector":
            services[name]["replicas"] = 0
    services["minio"] = {"published_port": base_port + 5,
                         "published_console_port": base_port + 6}
    path = tmp / f"{stack}.yaml"
    path.write_text(yaml.safe_dump({"stack": {"name": stack}, "services": services}))
    return path


class Stack:
    """A test stack on one bed manager, removed with its secrets, configs and state afterwards."""

    def __init__(self, bed: dict[str, Any], manager: str, tmp: Path, base_port: int) -> None:
        self.bed = bed
        self.manager = bed["managers"][manager]
        self.alias = self.manager["alias"]
        self.name = f"dp-{manager[:4]}-{uuid.uuid4().hex[:6]}"
        self.values = _stack_values(tmp, self.name, base_port)
        self.api = docker.APIClient(base_url=self.manager["docker_host"])

    def argv(self, command: str, *extra: str) -> list[str]:
        return [command, "-f", str(STANDIN_VALUES), "-f", str(self.values),
                "--host", self.alias, "--ssh-config", self.bed["ssh_config"], *extra]

    def versions(self) -> dict[str, int]:
        return service_versions(docker.DockerClient(base_url=self.manager["docker_host"]),
                                self.name, "test")

    def state_dir(self) -> Path:
        return Path(self.manager["state_dir"]) / self.name

    def cleanup(self) -> None:
        subprocess.run(["docker", "-H", self.manager["docker_host"], "stack", "rm", self.name],
                       capture_output=True, check=False)
        # Secrets and configs are in use until the tasks are gone.
        for _ in range(60):
            label = f"com.docker.stack.namespace={self.name}"
            if not self.api.containers(filters={"label": label}):
                break
            subprocess.run(["sleep", "0.5"], check=False)
        for secret in self.api.secrets(filters={"label": f"io.mlops.stack={self.name}"}):
            try:
                self.api.remove_secret(secret["ID"])
            except docker.errors.APIError:
                pass
        for config in self.api.configs(filters={"label": f"io.mlops.stack={self.name}"}):
            try:
                self.api.remove_config(config["ID"])
            except docker.errors.APIError:
                pass
        shutil.rmtree(self.state_dir(), ignore_errors=True)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    return SECRET


@pytest.fixture
def loopback_stack(bed: dict[str, Any], tmp_path: Path, secret_env: str) -> Iterator[Stack]:
    stack = Stack(bed, "loopback", tmp_path, 20100)
    yield stack
    stack.cleanup()


@pytest.fixture
def remote_stack(bed: dict[str, Any], tmp_path: Path, secret_env: str) -> Iterator[Stack]:
    stack = Stack(bed, "remote", tmp_path, 20200)
    yield stack
    stack.cleanup()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_push_noop_check_diff_and_secrets(
    loopback_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = loopback_stack
    code, out = run(stack.argv("push", "-v"), capsys)
    assert code == 0, out
    assert "changed: [bed-loopback" in out and "stack-deploy" in out
    services = stack.api.services(filters={"label": f"com.docker.stack.namespace={stack.name}"},
                                  status=True)
    running = {s["Spec"]["Name"]: s["ServiceStatus"]["RunningTasks"] for s in services}
    assert running[f"{stack.name}_llm-connector"] == 1
    assert running[f"{stack.name}_minio"] == 1

    code, out = run(["status", "--host", stack.alias, "--ssh-config", stack.bed["ssh_config"],
                     "--stack", stack.name], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("llm-connector"))
    assert "1/1" in row and "healthy" in row and "20101->8000" in row, out

    # Second push: a no-op that never calls `docker stack deploy` (no version bump).
    before = stack.versions()
    code, out = run(stack.argv("push", "-v"), capsys)
    assert code == 0, out
    assert "ok: [bed-loopback" in out and "changed:" not in out and "stack deploy" not in out
    assert stack.versions() == before

    # --check with a change: lists the field, changes nothing.
    change = ["--set", "services.llm-connector.env.VERSION=v2"]
    code, out = run(stack.argv("push", "--check", *change), capsys)
    assert code == 0, out
    assert "llm-connector.environment.VERSION" in out and "would change" in out
    assert stack.versions() == before

    # --diff (with --check) shows the change as a unified diff.
    code, out = run(stack.argv("push", "--check", "--diff", *change), capsys)
    assert '+      VERSION: "v2"' in out, out
    assert stack.versions() == before

    # Secrets: the value is in no output, no state file, no service spec.
    assert SECRET not in out
    for path in stack.state_dir().rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    for service in services:
        assert SECRET not in str(stack.api.inspect_service(service["ID"]))
    state_files = [p.name for p in stack.state_dir().rglob("*") if p.is_file()]
    assert {"stack.yml", "meta.json", "current", "audit.log"} <= set(state_files)


def test_failing_update_rolls_back(
    loopback_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = loopback_stack
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    bad = ["--set", "services.llm-connector.env.FAIL_HEALTH=1", "--timeout", "120"]
    code, out = run(stack.argv("push", *bad), capsys)
    assert code != 0
    assert "llm-connector" in out and "rolled back to revision 1" in out, out
    # The old version serves again: spec without FAIL_HEALTH, its replica running.
    spec = stack.api.inspect_service(f"{stack.name}_llm-connector")["Spec"]
    env = spec["TaskTemplate"]["ContainerSpec"].get("Env") or []
    assert not any(e.startswith("FAIL_HEALTH=") for e in env)
    status = stack.api.services(filters={"name": f"{stack.name}_llm-connector"}, status=True)
    assert status[0]["ServiceStatus"]["RunningTasks"] == 1
    assert (stack.state_dir() / "current").read_text().strip() == "1"
    meta = (stack.state_dir() / "revisions" / "2" / "meta.json").read_text()
    assert '"outcome": "failed"' in meta


def test_push_to_remote_manager_ships_only_missing(
    remote_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = remote_stack
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    # The namespace manager has the stand-in image preloaded: nothing to ship, just a tag.
    assert "ship-image" not in out
    assert stack.api.services(filters={"label": f"com.docker.stack.namespace={stack.name}"})
    before = stack.versions()
    code, out = run(stack.argv("push"), capsys)
    assert code == 0 and "ok: [bed-remote" in out, out
    assert stack.versions() == before


def test_concurrent_push_hits_the_lock(
    loopback_stack: Stack, capsys: pytest.CaptureFixture[str], bed: dict[str, Any]
) -> None:
    from deployer.connectors import connect
    from deployer.inventory import adhoc_host

    stack = loopback_stack
    host = adhoc_host(stack.alias, ssh_config=bed["ssh_config"])
    with connect(host.ssh) as conn:
        lock = DeployLock(conn, read_state(conn, stack.name)).acquire()
        try:
            code, out = run(stack.argv("push"), capsys)
            assert code != 0
            assert "is being deployed by" in out and "--break-lock" in out
        finally:
            lock.release()
        assert read_state(conn, stack.name).lock is None
