"""`deployer scale / logs / remove / rollback / history` on the test bed's real Swarm over real
SSH (stacks dp3-*, host ports 20300-20499), plus the pure parts of those commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from deployer.cli import main
from deployer.errors import ConfigError, DeployError
from deployer.history import parse_history
from deployer.logs import check_since, parse_line
from deployer.rollback import external_objects, previous_revision
from deployer.scale import ScaleChange, declared_replicas, drift_notes, parse_requests
from deployer.state import StackState

REPO = Path(__file__).resolve().parent.parent
STANDIN_VALUES = REPO / "tests" / "data" / "values.standin.yaml"
MARKER = "dp3-heartbeat-" + uuid.uuid4().hex[:8]


def stack_values(tmp: Path, stack: str, base_port: int, **extra: Any) -> Path:
    """A small stack: llm-connector (published) and gradio-frontend (unpublished, so it can run
    two replicas on one node) write MARKER lines; minio runs; the others are scaled to 0."""
    beat = {"HEARTBEAT_SECONDS": "1"}
    services: dict[str, Any] = {
        "gradio-frontend": {"publish": False, "env": {**beat, "LOG_LINE": f"{MARKER}-gradio"}},
        "llm-connector": {"published_port": base_port + 1,
                          "env": {**beat, "LOG_LINE": f"{MARKER}-llm"}},
        "sklearn-model": {"published_port": base_port + 2, "replicas": 0},
        "cnn-image": {"published_port": base_port + 3, "replicas": 0},
        "mlflow-server": {"published_port": base_port + 4, "replicas": 0},
        "minio": {"published_port": base_port + 5, "published_console_port": base_port + 6},
    }
    data = {"stack": {"name": stack}, "services": services}
    for key, value in extra.items():
        data[key] = value
    path = tmp / f"{stack}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Dp3Stack:
    """A dp3-* test stack on one bed manager; removed with its secrets, configs, volumes and
    state afterwards (whatever the test left)."""

    def __init__(self, bed: dict[str, Any], manager: str, tmp: Path, base_port: int) -> None:
        self.bed = bed
        self.manager = bed["managers"][manager]
        self.alias: str = self.manager["alias"]
        self.name = f"dp3-{manager[:4]}-{uuid.uuid4().hex[:6]}"
        self.values = stack_values(tmp, self.name, base_port)
        self.api = docker.APIClient(base_url=self.manager["docker_host"])

    def target(self) -> list[str]:
        return ["--host", self.alias, "--ssh-config", self.bed["ssh_config"]]

    def argv(self, command: str, *extra: str) -> list[str]:
        return [command, "-f", str(STANDIN_VALUES), "-f", str(self.values), *self.target(),
                *extra]

    def services(self) -> dict[str, dict[str, Any]]:
        found = self.api.services(filters={"label": f"com.docker.stack.namespace={self.name}"},
                                  status=True)
        return {s["Spec"]["Name"].removeprefix(f"{self.name}_"): s for s in found}

    def env(self, service: str) -> list[str]:
        spec = self.api.inspect_service(f"{self.name}_{service}")["Spec"]
        return list(spec["TaskTemplate"]["ContainerSpec"].get("Env") or [])

    def state_dir(self) -> Path:
        return Path(self.manager["state_dir"]) / self.name

    def audit(self) -> list[dict[str, Any]]:
        path = self.state_dir() / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def volumes(self) -> list[str]:
        found = self.api.volumes(filters={"label": f"com.docker.stack.namespace={self.name}"})
        return [v["Name"] for v in found.get("Volumes") or []]

    def cleanup(self) -> None:
        subprocess.run(["docker", "-H", self.manager["docker_host"], "stack", "rm", self.name],
                       capture_output=True, check=False)
        label = f"com.docker.stack.namespace={self.name}"
        for _ in range(60):
            left = self.api.containers(all=True, filters={"label": label})
            if not left:
                break
            # Swarm keeps the exited containers of a completed job after `stack rm`.
            for container in left:
                if container["State"] == "exited":
                    self.api.remove_container(container["Id"], force=True)
            subprocess.run(["sleep", "0.5"], check=False)
        own = {"label": f"io.mlops.stack={self.name}"}
        for remove, items in (
            (self.api.remove_secret, [s["ID"] for s in self.api.secrets(filters=own)]),
            (self.api.remove_config, [c["ID"] for c in self.api.configs(filters=own)]),
            (self.api.remove_volume, self.volumes()),
        ):
            for item in items:
                try:
                    remove(item)
                except docker.errors.APIError:
                    pass  # shared content-named object still used by another stack
        subprocess.run(["rm", "-rf", str(self.state_dir())], check=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "dp3-test-key-" + uuid.uuid4().hex
    monkeypatch.setenv("GOOGLE_API_KEY", value)
    return value


def make_stack(bed: dict[str, Any], tmp: Path, base_port: int) -> Iterator[Dp3Stack]:
    stack = Dp3Stack(bed, "loopback", tmp, base_port)
    try:
        yield stack
    finally:
        stack.cleanup()


@pytest.fixture
def stack_a(bed: dict[str, Any], tmp_path: Path, secret_env: str) -> Iterator[Dp3Stack]:
    yield from make_stack(bed, tmp_path, 20300)


@pytest.fixture
def stack_b(bed: dict[str, Any], tmp_path: Path, secret_env: str) -> Iterator[Dp3Stack]:
    yield from make_stack(bed, tmp_path, 20310)


@pytest.fixture
def stack_c(bed: dict[str, Any], tmp_path: Path, secret_env: str) -> Iterator[Dp3Stack]:
    yield from make_stack(bed, tmp_path, 20320)


# ---------------------------------------------------------------------------------------------
# Pure parts


def test_scale_requests_are_checked() -> None:
    assert parse_requests(["web=3", "api=0"]) == {"web": 3, "api": 0}
    for bad, words in (("web", "SERVICE=N"), ("web=-1", "0 or more"), ("web=x", "whole number"),
                       ("=2", "SERVICE=N")):
        with pytest.raises(ConfigError, match=words):
            parse_requests([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_requests(["web=1", "web=2"])


def test_drift_notes_say_how_to_keep_the_count() -> None:
    declared = declared_replicas(yaml.safe_dump(
        {"services": {"web": {"deploy": {"replicas": 1}}, "api": {"deploy": {"replicas": 2}}}}
    ))
    notes = drift_notes(declared, [ScaleChange("web", 1, 3), ScaleChange("api", 5, 2)])
    assert notes == [
        "web: live replicas now differ from values (3 vs 1): add --set "
        "services.web.replicas=3 to keep it on the next push",
        "api: back to the 2 replica(s) of the values",
    ]


def test_history_and_previous_revision() -> None:
    text = ("current=3\n--revision 1\n{\"outcome\": \"deployed\", \"who\": \"a@b\"}\n"
            "--revision 2\n{\"outcome\": \"failed\"}\n--revision 3\n{\"outcome\": \"deployed\"}\n")
    history = parse_history("s", text)
    assert [r.number for r in history.revisions] == [1, 2, 3] and history.current == 3
    assert history.revisions[2].row()[1] == "*" and history.revisions[0].row()[3] == "a@b"
    state = StackState("s", "/d", 3, (1, 2, 3), None, None)
    assert previous_revision(state, history.metas()) == 1  # 2 failed: never rolled back to
    removed = StackState("s", "/d", None, (1, 2, 3), None, None)
    assert previous_revision(removed, history.metas()) == 3
    with pytest.raises(DeployError, match="no successfully deployed revision"):
        previous_revision(StackState("s", "/d", 1, (1,), None, None), history.metas())


def test_log_lines_and_since() -> None:
    line = parse_line("2026-11-26T12:00:00.1Z mystack_web.2@node1    | hello | world", "mystack")
    assert (line.timestamp, line.source, line.text) == ("2026-11-26T12:00:00.1Z", "web.2@node1",
                                                        "hello | world")
    assert line.render(prefix=True, timestamps=False) == "web.2@node1 | hello | world"
    assert check_since("1h30m") == "1h30m" and check_since("2026-01-02T13:23:37Z")
    with pytest.raises(ConfigError, match="--since"):
        check_since("yesterday")


def test_external_objects_of_a_revision() -> None:
    text = yaml.safe_dump({"services": {}, "secrets": {"k": {"external": True, "name": "k_1"}},
                           "configs": {"c": {"external": True, "name": "c_2"}}})
    assert [(o.kind, o.key, o.name) for o in external_objects(text)] == [
        ("secret", "k", "k_1"), ("config", "c", "c_2")]


# ---------------------------------------------------------------------------------------------
# On the bed


@pytest.mark.e2e
@pytest.mark.slow
def test_scale_logs_history_and_rollbacks(
    stack_a: Dp3Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_a
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out

    # scale up: the engine runs two replicas; the drift from the values is said.
    code, out = run(stack.argv("scale", "gradio-frontend=2", "-v"), capsys)
    assert code == 0, out
    assert stack.services()["gradio-frontend"]["ServiceStatus"]["RunningTasks"] == 2
    assert "changed: [bed-loopback" in out and "gradio-frontend  (1 -> 2)" in out
    assert "$ docker service scale --detach" in out
    assert ("live replicas now differ from values (2 vs 1): add --set "
            "services.gradio-frontend.replicas=2 to keep it on the next push") in out
    # Same count again: ok, nothing changed.
    code, out = run(stack.argv("scale", "gradio-frontend=2"), capsys)
    assert code == 0 and "ok: [bed-loopback" in out and "changed:" not in out, out

    # logs: a line the stand-in printed; one service with --tail; the whole stack prefixed.
    code, out = run(["logs", "llm-connector", "--tail", "3", "--stack", stack.name,
                     *stack.target()], capsys)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line]
    assert 0 < len(lines) <= 3 and any(f"{MARKER}-llm" in line for line in out.splitlines()), out
    code, out = run(["logs", "--stack", stack.name, "--tail", "20", *stack.target()], capsys)
    assert code == 0, out
    assert any(line.startswith("llm-connector.1@") and f"{MARKER}-llm" in line
               for line in out.splitlines()), out
    assert any(line.startswith("gradio-frontend.2@") for line in out.splitlines()), out
    code, out = run(["logs", "nope", "--stack", stack.name, *stack.target()], capsys)
    assert code == 2 and "no service 'nope'" in out

    # scale down to 0: reflected in the engine.
    code, out = run(stack.argv("scale", "gradio-frontend=0"), capsys)
    assert code == 0, out
    assert stack.services()["gradio-frontend"]["Spec"]["Mode"]["Replicated"]["Replicas"] == 0
    assert stack.services()["gradio-frontend"]["ServiceStatus"]["RunningTasks"] == 0
    code, out = run(stack.argv("scale", "nope=1"), capsys)
    assert code == 2 and "no service 'nope'" in out and "llm-connector" in out

    # Two pushes -> two revisions in the history, the second current.
    code, out = run(stack.argv("push", "--set", "services.llm-connector.env.VERSION=v2"), capsys)
    assert code == 0, out
    assert "VERSION=v2" in stack.env("llm-connector")
    code, out = run(stack.argv("history"), capsys)
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"] and rows[1][1] == "*" and rows[0][1] != "*", out
    assert all(r[-1] == "deployed" and "mlops-standin:" in " ".join(r) for r in rows), out

    # Whole-stack rollback to revision 1 restores its spec (no VERSION), recorded.
    code, out = run(stack.argv("rollback", "--to-revision", "1"), capsys)
    assert code == 0, out
    assert not any(e.startswith("VERSION=") for e in stack.env("llm-connector"))
    assert stack.services()["llm-connector"]["ServiceStatus"]["RunningTasks"] == 1
    assert (stack.state_dir() / "current").read_text().strip() == "1"
    assert stack.audit()[-1]["action"] == "rollback" and stack.audit()[-1]["revision"] == 1

    # Per-service rollback: Swarm's previous spec of llm-connector is revision 2's.
    code, out = run(stack.argv("rollback", "llm-connector"), capsys)
    assert code == 0, out
    assert "VERSION=v2" in stack.env("llm-connector")
    assert stack.services()["llm-connector"]["ServiceStatus"]["RunningTasks"] == 1
    assert stack.audit()[-1]["action"] == "rollback-service"
    # llm-connector's completed rollback lingers in Swarm's update state: later commands must
    # not take it for a failure.
    code, out = run(stack.argv("scale", "gradio-frontend=1"), capsys)
    assert code == 0, out
    assert stack.services()["gradio-frontend"]["ServiceStatus"]["RunningTasks"] == 1
    code, out = run(stack.argv("rollback", "nope"), capsys)
    assert code == 2 and "no service 'nope'" in out, out


@pytest.mark.e2e
@pytest.mark.slow
def test_logs_follow_stops_cleanly_on_ctrl_c(
    stack_b: Dp3Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_b
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    # Ctrl-C as at a terminal: Python's KeyboardInterrupt handler set in the child, since a
    # test command started in the background (no job control) inherits SIGINT ignored.
    argv = ["logs", "llm-connector", "-f", "--tail", "0", "--stack", stack.name,
            *stack.target()]
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys; "
         "signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from deployer.cli import main; sys.exit(main(sys.argv[1:]))", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # new heartbeats arrive every second
            seen.append(line)
            if f"{MARKER}-llm" in line:
                break
        assert any(f"{MARKER}-llm" in line for line in seen)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err, err


@pytest.mark.e2e
@pytest.mark.slow
def test_remove_keeps_volumes_unless_asked(
    stack_b: Dp3Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_b
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    assert stack.volumes() and stack.api.secrets(filters={"label": f"io.mlops.stack={stack.name}"})

    # --volumes without --yes and no terminal: refused with the fix, nothing removed.
    code, out = run(stack.argv("remove", "--volumes"), capsys)
    assert code == 2 and "--yes" in out, out
    assert stack.services() and stack.volumes()

    code, out = run(stack.argv("remove"), capsys)
    assert code == 0, out
    assert not stack.services()
    assert not stack.api.networks(filters={"label": f"com.docker.stack.namespace={stack.name}"})
    assert not stack.api.secrets(filters={"label": f"io.mlops.stack={stack.name}"})
    # Not even the exited container of the completed bucket-init job is left behind.
    assert not stack.api.containers(
        all=True, filters={"label": f"com.docker.stack.namespace={stack.name}"})
    assert stack.volumes(), "volumes are kept by default"
    assert "kept; --volumes removes them" in out
    assert not (stack.state_dir() / "current").exists()
    assert stack.audit()[-1]["action"] == "remove" and stack.audit()[-1]["revision"] == 1

    code, out = run(stack.argv("remove", "--volumes", "--yes"), capsys)
    assert code == 0, out
    assert not stack.volumes()
    code, out = run(stack.argv("remove"), capsys)
    assert code == 0 and "ok: [bed-loopback" in out and "not deployed" in out, out


@pytest.mark.e2e
@pytest.mark.slow
def test_rollback_to_a_revision_whose_secret_was_pruned(
    stack_c: Dp3Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    secret_env: str,
) -> None:
    stack = stack_c
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    rotated = secret_env + "-rotated"
    monkeypatch.setenv("GOOGLE_API_KEY", rotated)
    code, out = run(stack.argv("push"), capsys)
    assert code == 0 and "prune-secrets" in out, out
    names = {s["Spec"]["Name"] for s in stack.api.secrets()}
    first = json.loads((stack.state_dir() / "revisions" / "1" / "meta.json").read_text())
    old_secret = first["secrets"]["google_api_key"]["name"]
    assert old_secret not in names
    versions = {n: s["Version"]["Index"] for n, s in stack.services().items()}

    # With the rotated key only, revision 1's key cannot be recreated: refused, nothing changed.
    code, out = run(stack.argv("rollback"), capsys)
    assert code != 0 and old_secret in out and "GOOGLE_API_KEY" in out, out
    assert {n: s["Version"]["Index"] for n, s in stack.services().items()} == versions
    assert (stack.state_dir() / "current").read_text().strip() == "2"

    # With the key revision 1 was pushed with, the secret is recreated and the stack rolls back.
    monkeypatch.setenv("GOOGLE_API_KEY", secret_env)
    code, out = run(stack.argv("rollback"), capsys)
    assert code == 0, out
    assert f"create-secret {old_secret}" in out
    assert secret_env not in out and rotated not in out
    spec = stack.api.inspect_service(f"{stack.name}_llm-connector")["Spec"]
    assert old_secret in str(spec["TaskTemplate"]["ContainerSpec"]["Secrets"])
    assert (stack.state_dir() / "current").read_text().strip() == "1"
