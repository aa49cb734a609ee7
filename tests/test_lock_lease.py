"""The deploy lock's lease on a real manager over real SSH (bed-remote): the holder's heartbeat
keeps the lock; a connection cut on the network side (the manager's sshd has not noticed, and
without ClientAlive settings would not for hours) frees it once the heartbeat has been missing
for the lease, with no --break-lock. Short heartbeat and lease for the test (patched)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_faults_deploy import Cut

from deployer import lock as lock_module
from deployer.connectors import connect
from deployer.connectors.base import Connector
from deployer.errors import LockHeldError
from deployer.inventory import adhoc_host
from deployer.lock import DeployLock, LockLost
from deployer.state import read_state

pytestmark = [pytest.mark.e2e]

HEARTBEAT, LEASE = 1.0, 4


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", HEARTBEAT)
    monkeypatch.setattr(lock_module, "LEASE_SECONDS", LEASE)


@pytest.fixture
def stack_name(bed: dict[str, Any]) -> Iterator[str]:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    yield name
    for base in (bed["managers"]["remote"]["state_dir"], os.environ["MLOPS_STATE_DIR"]):
        shutil.rmtree(Path(base) / name, ignore_errors=True)


def open_conn(bed: dict[str, Any], where: str = "remote") -> Connector:
    if where == "local":  # the local engine: the lock is held through a pipe
        return connect(None, docker_host=bed["docker_host"])
    return connect(adhoc_host("bed-remote", ssh_config=bed["ssh_config"]).ssh)


def wait_for(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return bool(condition())


@pytest.mark.parametrize("where", ["remote", "local"])
def test_the_heartbeat_keeps_the_lock_past_its_lease(
    bed: dict[str, Any], short_lease: None, stack_name: str, where: str,
) -> None:
    with open_conn(bed, where) as holder, open_conn(bed, where) as other:
        lock = DeployLock(holder, read_state(holder, stack_name)).acquire()
        lock_file = Path(read_state(holder, stack_name).stack_dir) / "lock"
        try:
            time.sleep(3 * LEASE)  # three leases: only the heartbeat can have kept it
            assert lock_file.exists()
            with pytest.raises(LockHeldError, match="is being deployed by"):
                DeployLock(other, read_state(other, stack_name)).acquire()
        finally:
            lock.release()
        assert wait_for(lambda: not lock_file.exists(), 10)


def test_a_cut_connection_frees_the_lock_after_the_lease(
    bed: dict[str, Any], short_lease: None, stack_name: str,
) -> None:
    manager = bed["managers"]["remote"]
    lock_file = Path(manager["state_dir"]) / stack_name / "lock"
    holder = open_conn(bed)
    transport = getattr(holder, "transport", None)
    assert transport is not None
    local_port = int(transport.sock.getsockname()[1])
    lock = DeployLock(holder, read_state(holder, stack_name)).acquire()
    cut = Cut(local_port, manager["host"])
    try:
        # Missed heartbeats within the lease do not free it...
        time.sleep(2 * HEARTBEAT)
        assert lock_file.exists()
        # ...but the manager frees it itself once the heartbeat is LEASE s overdue (the sshd
        # session of the cut connection is still there).
        assert wait_for(lambda: not lock_file.exists(), LEASE + 3 * HEARTBEAT + 10)
        with open_conn(bed) as other:
            taken = DeployLock(other, read_state(other, stack_name)).acquire()
            assert taken.stale is None  # free, not broken into
            taken.release()
    finally:
        cut.restore()
        lock._release.set()
        holder.close()


def test_a_lapsed_lease_is_reported_to_its_holder(
    bed: dict[str, Any], monkeypatch: pytest.MonkeyPatch, stack_name: str,
) -> None:
    # A holder whose heartbeat is held up past the lease (a suspended laptop, a byte stuck
    # behind image data on a slow uplink) must learn that the lock is gone before its next step.
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 600.0)
    monkeypatch.setattr(lock_module, "LEASE_SECONDS", 2)
    with open_conn(bed) as holder:
        lock = DeployLock(holder, read_state(holder, stack_name)).acquire()
        try:
            lock.check()  # held
            lock_file = Path(read_state(holder, stack_name).stack_dir) / "lock"

            def lost() -> bool:
                try:
                    lock.check()
                except LockLost:
                    return True
                return False

            assert wait_for(lambda: not lock_file.exists() and lost(), 20)
            with pytest.raises(LockLost, match="lease lapsed"):
                lock.check()
        finally:
            lock.release()
