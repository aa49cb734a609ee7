"""Faults on the bed: a push killed mid-deploy (its SSH connection dies with it), the deploy lock
held by another live run, and --break-lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_deployer_manage import REPO, Dp3Stack, run

from deployer.connectors import connect
from deployer.inventory import adhoc_host
from deployer.lock import DeployLock
from deployer.state import read_state, who

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack(bed: dict[str, Any], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Dp3Stack]:
    monkeypatch.setenv("GOOGLE_API_KEY", "dp3-faults-key")
    made = Dp3Stack(bed, "loopback", tmp_path, 20330)
    try:
        yield made
    finally:
        made.cleanup()


def test_push_killed_while_waiting_then_rerun_converges(
    stack: Dp3Stack, bed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployer.cli", *stack.argv("push")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "stack-deploy" in line:  # deployed; now waiting for convergence
                break
        assert any("stack-deploy" in line for line in seen), "".join(seen)
        # The process dies with its SSH connection, the lock holder on the manager with it.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    host = adhoc_host(stack.alias, ssh_config=bed["ssh_config"])
    with connect(host.ssh) as conn:
        lock = read_state(conn, stack.name).lock
        for _ in range(40):  # sshd notices the dead client within moments
            if lock is None or not lock.alive:
                break
            time.sleep(0.25)
            lock = read_state(conn, stack.name).lock
        assert lock is None or not lock.alive, f"orphaned live lock: {lock}"
        # The killed run recorded nothing as current.
        assert read_state(conn, stack.name).current is None

    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    assert "changed:" in out and "record" in out
    services = stack.services()
    assert services["llm-connector"]["ServiceStatus"]["RunningTasks"] == 1
    with connect(host.ssh) as conn:
        state = read_state(conn, stack.name)
        assert state.lock is None and state.current is not None
    # And it is a no-op now.
    code, out = run(stack.argv("push"), capsys)
    assert code == 0 and "changed:" not in out, out


def test_lock_held_by_a_live_run_is_refused_and_break_lock_takes_it(
    stack: Dp3Stack, bed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(stack.argv("push"), capsys)
    assert code == 0, out
    host = adhoc_host(stack.alias, ssh_config=bed["ssh_config"])
    with connect(host.ssh) as conn:
        lock = DeployLock(conn, read_state(conn, stack.name)).acquire()
        try:
            for command in (["scale", "gradio-frontend=2"], ["remove"], ["rollback"]):
                code, out = run(stack.argv(*command), capsys)
                assert code != 0, out
                assert f"is being deployed by {who()} since" in out, out
                assert "--break-lock" in out
            assert stack.services()["gradio-frontend"]["Spec"]["Mode"]["Replicated"][
                "Replicas"] == 1

            code, out = run(stack.argv("scale", "gradio-frontend=2", "--break-lock"), capsys)
            assert code == 0, out
            assert "took over the lock" in out
            assert stack.services()["gradio-frontend"]["ServiceStatus"]["RunningTasks"] == 2
            actions = [entry["action"] for entry in stack.audit()]
            assert actions[-2:] == ["break-lock", "scale"]
        finally:
            lock.release()
        # Our run released the lock it broke into; the old holder's release removes nothing
        # that is not its own.
        assert read_state(conn, stack.name).lock is None
