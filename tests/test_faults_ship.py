"""The SSH connection to the manager cut on the network side while an image ships.

A stand-in stack runs on bed-remote (revision 1). The next push gives sklearn-model an image the
manager lacks: the stand-in plus a generated layer of random bytes (incompressible, so the
transfer lasts), built on the local engine. Once its layer's archive is under way to the manager
(the push reports bytes sent), iptables drops that one TCP connection, as a pulled cable would.
Expected:

* the run ends (bounded by the Engine API's read timeout, no hang in the cleanup) with an error
  naming the host and what was happening (the image being sent), no traceback;
* nothing deployed: the service still runs revision 1's image, no revision 2 recorded;
* no registry process left (the pid its pidfile named is gone) and no temporary
  ``127.0.0.1:PORT/...`` tag on either engine;
* the lock frees itself once the cut run's heartbeat is a lease overdue, with no --break-lock;
  the rerun ships the image and converges.

The manager's side of the cut connection is not ours to end: its sshd keeps the session (and
the half-fed docker load in it) until it notices the client is gone, which without
ClientAliveInterval in its sshd_config takes hours. The test ends that session by its PID
afterwards (``end_manager_session``), as the shared bed would otherwise keep one per run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from test_faults_deploy import Cut, FaultStack, Watched, _ssh_port_of

from deployer.shipping.registry import registry_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NETNS = "mlopsbed"
REPO_PREFIX = "ft-ship"
#: The generated layer: random bytes, so compression cannot shrink the transfer.
BALLAST_MB = 80
LOCAL = "unix:///var/run/docker.sock"


def build_big(tmp: Path, ref: str) -> str:
    """The stand-in plus a layer of BALLAST_MB random bytes (new content every build)."""
    ctx = tmp / "big-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM mlops-standin:latest\n"
        f"RUN head -c {BALLAST_MB * 1024 * 1024} /dev/urandom > /opt/ballast.bin\n")
    # The legacy builder: BuildKit would look the stand-in up in a registry (none reachable).
    subprocess.run(["docker", "-H", LOCAL, "build", "-q", "-t", ref, str(ctx)], check=True,
                   capture_output=True, timeout=300, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return str(docker.APIClient(base_url=LOCAL).inspect_image(ref)["Id"])


def temp_tags(docker_host: str) -> list[str]:
    """``127.0.0.1:PORT/...`` tags of this test's images on an engine."""
    api = docker.APIClient(base_url=docker_host)
    return [t for image in api.images() for t in (image.get("RepoTags") or ())
            if t.startswith("127.0.0.1:") and f"/{REPO_PREFIX}/" in t]


def remove_images(docker_host: str) -> None:
    api = docker.APIClient(base_url=docker_host)
    for image in api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(f"{REPO_PREFIX}/") or f"/{REPO_PREFIX}/" in tag:
                try:
                    api.remove_image(tag, noprune=False)
                except docker.errors.APIError:
                    pass  # still used by a container of the stack being removed


def end_manager_session(manager_ip: str, local_port: int) -> None:
    """End the manager's sshd session of the cut connection (by its PID), as its sshd would
    once it noticed. Without ClientAliveInterval it does not for hours, and until then the
    session keeps its half-fed docker load (and its temporary files) on the shared bed."""
    out = subprocess.run(["ip", "netns", "exec", NETNS, "ss", "-Htnp", "state", "established",
                          "src", f"{manager_ip}:22", "dport", "=", f":{local_port}"],
                         capture_output=True, text=True, check=True, timeout=20).stdout
    for pid in {int(p) for p in re.findall(r'"sshd",pid=(\d+)', out)}:
        print(f"ending the cut connection's sshd session on the manager (pid {pid})")
        os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists()


class ShipStack(FaultStack):
    """sklearn-model alone (fast health checks), on the stand-in or on the big image."""

    def __init__(self, bed: dict[str, Any], tmp: Path) -> None:
        super().__init__(bed, tmp, 20440, "ship")
        self.ref = f"{REPO_PREFIX}/sklearn:{uuid.uuid4().hex[:8]}"
        self.set_image(None)

    def set_image(self, image: str | None) -> None:
        services: dict[str, Any] = {}
        for offset, name in enumerate(["gradio-frontend", "llm-connector", "sklearn-model",
                                       "cnn-image", "mlflow-server"]):
            services[name] = {"published_port": 20440 + offset, "replicas": 0}
        services["sklearn-model"] = {"published_port": 20442}
        if image:
            services["sklearn-model"]["image"] = image
        services["minio"] = {"published_port": 20445, "published_console_port": 20446,
                             "replicas": 0}
        self.values.write_text(yaml.safe_dump({"stack": {"name": self.name},
                                               "services": services}))

    def sklearn_image(self) -> str:
        label = f"com.docker.stack.namespace={self.name}"
        svc = next(s for s in self.api.services(filters={"label": label})
                   if s["Spec"]["Name"].endswith("_sklearn-model"))
        image = str(svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])
        return str(self.api.inspect_image(image)["Id"])

    def current(self) -> str | None:
        path = self.state_dir / "current"
        return path.read_text().strip() if path.exists() else None


@pytest.fixture
def ship_stack(bed: dict[str, Any], tmp_path: Path) -> Iterator[ShipStack]:
    stack = ShipStack(bed, tmp_path)
    try:
        yield stack
    finally:
        stack.cleanup()
        for host in (LOCAL, stack.manager["docker_host"]):
            remove_images(host)


def test_connection_cut_while_an_image_ships(ship_stack: ShipStack, tmp_path: Path) -> None:
    stack = ship_stack
    alias, manager_ip = stack.manager["alias"], stack.manager["host"]
    code, out = stack.run("push", "--timeout", "120")
    assert code == 0, out
    before_image, before_revision = stack.sklearn_image(), stack.current()
    assert before_revision is not None

    image_id = build_big(tmp_path, stack.ref)
    stack.set_image(stack.ref)
    pidfile = registry_dir() / "registry.pid"
    run = Watched(stack.argv("push", "--timeout", "120", "-v"),
                  re.compile(r": \d+(\.\d+)? MB sent to "))
    cut: Cut | None = None
    local_port = 0
    try:
        if not run.triggered.wait(240) or run.proc.poll() is not None:
            run.finish(timeout=1)
            raise AssertionError("push never got to sending, or ended before the cut:\n"
                                 + run.out)
        registry_pid = int(pidfile.read_text().strip())
        local_port = _ssh_port_of(run.proc.pid, manager_ip)
        cut = Cut(local_port, manager_ip)
        started = time.monotonic()
        code = run.finish(timeout=240)
        took = time.monotonic() - started
    finally:
        if cut is not None:
            cut.restore()
        if run.proc.poll() is None:
            run.finish(timeout=1)
        if local_port:
            end_manager_session(manager_ip, local_port)
    out = run.out
    assert code is not None, f"push hung for {took:.0f} s after the cut:\n{out}"
    print(f"push ended {took:.0f} s after the cut")
    assert "layers sent" not in out, "the transfer finished before the cut:\n" + out
    assert code != 0, out
    assert "Traceback" not in out, out
    assert f"connection lost: {alias}" in out and "stopped answering" in out, out
    assert re.search(rf"while sending {re.escape(stack.ref.split(':')[0])}", out), out
    assert "shipping whole images" not in out, "a lost connection is no reason to fall back"

    # Nothing deployed, nothing recorded.
    assert stack.sklearn_image() == before_image
    assert stack.current() == before_revision
    assert not (stack.state_dir / "revisions" / str(int(before_revision) + 1)).exists()
    # Nothing left running here, no temporary tag on either engine.
    assert not _alive(registry_pid), f"registry pid {registry_pid} outlived the run"
    assert not pidfile.exists() or pidfile.read_text().strip() != str(registry_pid)
    assert temp_tags(LOCAL) == [] and temp_tags(stack.manager["docker_host"]) == []
    # The cut run's lock frees itself within its lease (the manager's sshd still keeps that
    # session); then a plain rerun ships and converges.
    code, out = stack.rerun_once_the_lock_is_free()
    assert "layers sent" in out, out
    assert stack.sklearn_image() == image_id
    assert stack.sklearn_running()
    assert not (stack.state_dir / "lock").exists()
    assert temp_tags(LOCAL) == [] and temp_tags(stack.manager["docker_host"]) == []
