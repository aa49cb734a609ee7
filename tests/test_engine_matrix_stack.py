"""A stand-in stack's whole life on every engine kind of the bed's matrix: Docker 20.10 (the
namespace manager), 26.1 on the classic image store and 26.1 on the containerd image store
(engine managers from ``scripts/testbed engines-up``), driven by the deployer CLI over real SSH.

One test over the kinds, asserting behaviour (exit codes, output lines, the managers' Engine
API), never time: push converges and a second push is a no-op; an environment-only change
redeploys without shipping an image; scale, restart and logs work; a rollback to a revision
whose image the manager lost ships that image again by layers (the stand-in's are there, so
little crosses the wire); remove leaves no service behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from cluster_bed import FACTS, ClusterStack, bed_command

from deployer.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KINDS = ("20.10", "26.1", "26.1-containerd")
# Host-mode published ports only collide on one manager; a range per kind all the same.
BASE_PORTS = {"20.10": 21800, "26.1": 21820, "26.1-containerd": 21840}
STANDIN = "mlops-standin:latest"
REPO_PREFIX = "dp-emstack/app"
LOCAL_DOCKER = "unix:///var/run/docker.sock"
MARKER = "dp-emstack-beat-" + uuid.uuid4().hex[:8]
SIZE_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


@pytest.fixture(scope="session")
def engine_clusters(bed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each kind's manager as a one-node ``cluster`` dict (the shape ``ClusterStack`` takes)."""
    bed_command("engines-up")
    engines = json.loads(FACTS.read_text())["engines"]
    clusters = {"20.10": {"nodes": {"manager": bed["managers"]["remote"]},
                          "manager": "manager", "ssh_config": bed["ssh_config"]}}
    for kind, manager in engines["managers"].items():
        clusters[kind] = {"nodes": {"manager": manager}, "manager": "manager",
                          "ssh_config": engines["ssh_config"]}
    assert set(clusters) == set(KINDS), sorted(clusters)
    return clusters


class Made:
    """Images a test built: removed (with the pinned tags push made of them) from the local
    engine and the target afterwards."""

    def __init__(self, target_host: str) -> None:
        self.target_host = target_host
        self.refs: list[str] = []

    def cleanup(self) -> None:
        for host in (self.target_host, LOCAL_DOCKER):
            try:
                api = docker.APIClient(base_url=host, version="auto", timeout=60)
            except docker.errors.DockerException:
                continue  # an engine that does not answer: the local one is still cleaned
            try:
                for ref in reversed(self.refs):  # pinned tags first, a child before its base
                    try:
                        api.remove_image(ref, force=True)
                    except docker.errors.APIError:
                        pass
            finally:
                api.close()


@pytest.fixture
def stack_and_images(
    kind: str, engine_clusters: dict[str, dict[str, Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ClusterStack, Made]]:
    """A stand-in stack on ``kind``'s manager (llm-connector 1 replica, writing MARKER lines),
    and the images the test builds; the stack is removed, then the images."""
    monkeypatch.setenv("GOOGLE_API_KEY", "dp-emstack-key-" + uuid.uuid4().hex)
    cluster = engine_clusters[kind]
    llm = {"env": {"HEARTBEAT_SECONDS": 1, "LOG_LINE": MARKER},
           "healthcheck": {"interval": "500ms"}}
    stack = ClusterStack(cluster, tmp_path, prefix="dp-em", replicas=1,
                         base_port=BASE_PORTS[kind],
                         extra={"llm-connector": llm, "minio": {"replicas": 0}})
    # Each rolling update (environment change, restart, new image, rollback) finishes without
    # the stand-in values' pauses: no delay, a short monitor window.
    values = yaml.safe_load(stack.values.read_text())
    values["swarm"] = {"update_config": {"delay": "0s", "monitor": "500ms"}}
    stack.values.write_text(yaml.safe_dump(values))
    made = Made(stack.manager["docker_host"])
    try:
        yield stack, made
    finally:
        try:
            stack.cleanup()  # the stack first: its tasks use the images
        finally:
            made.cleanup()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def build(tmp: Path, ref: str, content: bytes) -> str:
    """The stand-in plus one small layer (legacy builder: BuildKit would look the base up in a
    registry), on the local engine; returns the image ID."""
    ctx = tmp / f"ctx-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    (ctx / "app.txt").write_bytes(content)
    (ctx / "Dockerfile").write_text(f"FROM {STANDIN}\nCOPY app.txt /opt/dp-emstack.txt\n")
    proc = subprocess.run(["docker", "-H", LOCAL_DOCKER, "build", "-q", "-t", ref, str(ctx)],
                          capture_output=True, text=True,
                          env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert proc.returncode == 0, proc.stderr
    api = docker.APIClient(base_url=LOCAL_DOCKER, version="auto")
    try:
        return str(api.inspect_image(ref)["Id"])
    finally:
        api.close()


def pinned(ref: str, image_id: str) -> str:
    """The tag push deploys an image under: ``repo:<first 12 hex of the local image ID>``."""
    return f"{ref.rsplit(':', 1)[0]}:{image_id.removeprefix('sha256:')[:12]}"


def shipped_images(out: str) -> list[str]:
    """The refs of the ``changed: [host] ship-image REF  (...)`` lines of an output."""
    return re.findall(r"^changed: \[[^\]]*\] ship-image (\S+)", out, flags=re.MULTILINE)


# 20.10 (the bed's namespace manager) runs each of these steps in the rest of the suite
# (test_deployer_push, test_deployer_manage, test_shipping_e2e): the modern kinds here.
@pytest.mark.parametrize("kind", KINDS[1:])
def test_a_stack_lives_on_every_engine_kind(
    kind: str, stack_and_images: tuple[ClusterStack, Made], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack, made = stack_and_images
    api = stack.api
    llm = stack.service("llm-connector")
    label = f"com.docker.stack.namespace={stack.name}"

    def spec() -> dict[str, Any]:
        return dict(api.inspect_service(llm)["Spec"])

    def image_of_service() -> str:
        return str(spec()["TaskTemplate"]["ContainerSpec"]["Image"]).split("@", 1)[0]

    def running() -> int:
        return len(stack.running_tasks("llm-connector"))

    def running_specs() -> list[dict[str, Any]]:
        """The container specs of llm-connector's running tasks (what really runs)."""
        tasks = api.tasks(filters={"service": llm, "desired-state": "running"})
        return [t["Spec"]["ContainerSpec"] for t in tasks if t["Status"]["State"] == "running"]

    def running_images() -> list[str]:
        return [str(c["Image"]).split("@", 1)[0] for c in running_specs()]

    # 1. push deploys and converges; status shows llm-connector 1/1.
    code, out = run(stack.argv("push", "--timeout", "120"), capsys)
    assert code == 0, out
    assert "stack-deploy" in out, out
    local = docker.APIClient(base_url=LOCAL_DOCKER, version="auto")
    try:
        standin = pinned(STANDIN, str(local.inspect_image(STANDIN)["Id"]))
    finally:
        local.close()
    assert running_images() == [standin], stack.tasks_summary("llm-connector")
    code, out = run(stack.argv("status"), capsys)
    assert code == 0, out
    row = next((line for line in out.splitlines() if line.startswith("llm-connector")), "")
    assert "1/1" in row, out

    # 2. The same push again: a no-op (ok, revision unchanged), nothing shipped, no redeploy.
    version = api.inspect_service(llm)["Version"]["Index"]
    code, out = run(stack.argv("push", "--timeout", "120"), capsys)
    assert code == 0, out
    assert re.search(r"^ok: \[[^\]]*\] push \S+  \(revision 1 unchanged\)", out,
                     flags=re.MULTILINE), out
    assert "changed:" not in out and shipped_images(out) == [], out
    assert api.inspect_service(llm)["Version"]["Index"] == version

    # 3. An environment-only change: redeployed, no image shipped (not a byte of one).
    env_change = ("--set", "services.llm-connector.env.DP_EMSTACK=env-only")
    code, out = run(stack.argv("push", "--timeout", "120", *env_change), capsys)
    assert code == 0, out
    assert re.search(r"^changed: \[[^\]]*\] stack-deploy ", out, flags=re.MULTILINE), out
    assert " ship-image " not in out and "over SSH" not in out, out
    # Converged: the one running task is the new spec's.
    assert ["DP_EMSTACK=env-only" in (c.get("Env") or []) for c in running_specs()] == [True], \
        stack.tasks_summary("llm-connector")

    # 4. scale to 0 and back to 1 (host-mode ports: one task per node on a one-node swarm).
    code, out = run(stack.argv("scale", "llm-connector=0", "--timeout", "120"), capsys)
    assert code == 0, out
    assert spec()["Mode"]["Replicated"]["Replicas"] == 0
    assert running() == 0, stack.tasks_summary("llm-connector")
    code, out = run(stack.argv("scale", "llm-connector=1", "--timeout", "120"), capsys)
    assert code == 0, out
    assert spec()["Mode"]["Replicated"]["Replicas"] == 1
    assert running() == 1, stack.tasks_summary("llm-connector")

    # 5. restart replaces the task; logs shows the service's lines.
    before = set(stack.running_tasks("llm-connector"))
    code, out = run(stack.argv("restart", "llm-connector", "--timeout", "120"), capsys)
    assert code == 0, out
    after = set(stack.running_tasks("llm-connector"))
    assert len(after) == 1 and after != before, (
        before, after, stack.tasks_summary("llm-connector"), out)
    code, out = run(["logs", "llm-connector", "--tail", "5", "--stack", stack.name, "--host",
                     stack.manager["alias"], "--ssh-config", stack.cluster["ssh_config"]], capsys)
    assert code == 0, out
    assert MARKER in out, out

    # 6. Revisions A then B (each the stand-in plus a small layer); the manager loses A's
    # image; rollback ships it again, by layers, and runs it.
    tag = uuid.uuid4().hex[:8]
    refs = {name: f"{REPO_PREFIX}:{tag}-{name}" for name in ("a", "b")}
    made.refs.extend(refs.values())
    ids = {name: build(tmp_path, ref, name.encode()) for name, ref in refs.items()}
    assert ids["a"] != ids["b"]
    deployed = {name: pinned(refs[name], ids[name]) for name in refs}
    made.refs.extend(deployed.values())
    for name in ("a", "b"):
        code, out = run(stack.argv("push", "--timeout", "120", "--set",
                                   f"services.llm-connector.image={refs[name]}"), capsys)
        assert code == 0, out
        assert shipped_images(out) == [deployed[name]], out
        assert image_of_service() == deployed[name]
        assert running_images() == [deployed[name]], stack.tasks_summary("llm-connector")
    api.remove_image(deployed["a"], force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(deployed["a"])
    code, out = run(stack.argv("rollback", "--timeout", "120"), capsys)
    assert code == 0, out
    assert image_of_service() == deployed["a"]
    assert running_images() == [deployed["a"]], stack.tasks_summary("llm-connector")
    assert shipped_images(out) == [deployed["a"]], out
    sent = re.search(rf"^changed: \[[^\]]*\] ship-image {re.escape(deployed['a'])}  "
                     r"\((\d+) of (\d+) layers sent, ([0-9.]+) (B|kB|MB|GB) over SSH",
                     out, flags=re.MULTILINE)
    assert sent is not None, out
    moved, layers = int(sent.group(1)), int(sent.group(2))
    assert moved < layers, out  # the stand-in's layers stayed on the manager
    assert float(sent.group(3)) * SIZE_UNITS[sent.group(4)] < 1_000_000, out

    # 7. remove: the stack's services are gone.
    code, out = run(stack.argv("remove", "--timeout", "120"), capsys)
    assert code == 0, out
    assert api.services(filters={"label": label}) == []

