"""The manager's dockerd restarted while `deployer push` waits for convergence (bed-remote).

The bed's remote engine is stopped by its pidfile and started again through the bed's own code
(scripts/testbed.py: ``stop`` and ``ensure_remote_engine``, the same command line `up` uses),
under the bed's lock. Expected: the push ends with an error naming the host, what it was doing
and what the host says (the engine is not running), with the fix; once the engine and its swarm
are back (live-restore is off: the containers stopped, Swarm restarts the tasks), a rerun
converges. The engine is shared with every later test: it is started again, with its swarm
active and its node ready, whatever happens here.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import pytest
from test_faults_deploy import FaultStack, Watched

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def _testbed() -> ModuleType:
    """scripts/testbed.py as a module (its helpers register it as ``testbed``)."""
    if "testbed" in sys.modules:
        return sys.modules["testbed"]
    spec = importlib.util.spec_from_file_location("testbed", REPO / "scripts" / "testbed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["testbed"] = module
    spec.loader.exec_module(module)
    return module


def engine_healthy(docker_host: str) -> bool:
    """The engine answers, its swarm is active and every node is ready."""
    try:
        api = docker.APIClient(base_url=docker_host, timeout=10)
        try:
            if api.info().get("Swarm", {}).get("LocalNodeState") != "active":
                return False
            nodes = api.nodes()
            return bool(nodes) and all(n["Status"]["State"] == "ready" for n in nodes)
        finally:
            api.close()
    except (docker.errors.DockerException, OSError):
        return False


def start_remote_engine(docker_host: str, timeout: float = 120) -> None:
    """Start bed-remote's dockerd the way `scripts/testbed up` does (idempotent), then wait
    until its swarm is active again and its node ready."""
    testbed = _testbed()
    with testbed.locked():
        testbed.ensure_remote_engine()
    deadline = time.monotonic() + timeout
    while not engine_healthy(docker_host):
        if time.monotonic() > deadline:
            raise AssertionError(f"bed-remote's engine not healthy {timeout:.0f} s after start")
        time.sleep(1)


@pytest.fixture
def restart_stack(bed: dict[str, Any], tmp_path: Path) -> Iterator[FaultStack]:
    stack = FaultStack(bed, tmp_path, 20450, "dockerd")
    docker_host = stack.manager["docker_host"]
    assert engine_healthy(docker_host), "bed-remote's engine was not healthy to begin with"
    try:
        yield stack
    finally:
        # Whatever failed: the shared engine runs again before anything else.
        start_remote_engine(docker_host)
        stack.cleanup()


def test_dockerd_restarted_while_waiting_then_rerun_converges(restart_stack: FaultStack) -> None:
    stack = restart_stack
    testbed = _testbed()
    run = Watched(stack.argv("push", "--timeout", "180"), re.compile("stack-deploy"))
    try:
        assert run.triggered.wait(120) and run.proc.poll() is None, \
            "push never reached stack-deploy:\n" + run.out
        with testbed.locked():
            testbed.stop("dockerd_remote", grace=30)  # SIGTERM by pidfile, then SIGKILL
        code = run.finish(timeout=120)
    finally:
        if run.proc.poll() is None:
            run.finish(timeout=1)
        start_remote_engine(stack.manager["docker_host"])
    out = run.out
    assert code is not None, "push hung with the engine stopped:\n" + out
    print("the push said:\n" + "\n".join(out.splitlines()[-6:]))
    assert code != 0, out
    assert "Traceback" not in out, out
    alias = stack.manager["alias"]
    assert f"cannot connect: {alias}" in out, out
    assert ("the Docker engine stopped, restarted or left its swarm while waiting for stack "
            f"{stack.name} to converge") in out, out
    assert "Is the docker daemon running?" in out, out  # what the manager itself says
    assert f"fix: check dockerd on {alias}" in out and "the rerun converges it" in out, out
    assert "swarm init" not in out, out  # a stopping engine's "not a swarm manager" misleads

    # The engine is back (its swarm restarts the tasks): the rerun converges.
    code, out = stack.run("push", "--timeout", "180")
    assert code == 0, out
    assert stack.sklearn_running()
    current = (stack.state_dir / "current").read_text().strip()
    assert (stack.state_dir / "revisions" / current / "stack.yml").is_file()


def _env() -> dict[str, str]:
    from test_faults_deploy import _env as env

    return env()
