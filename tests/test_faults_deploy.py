"""Faults during a real deploy to the bed's namespace manager (bed-remote, over real SSH).

* The SSH connection cut on the network side while `deployer push` waits for convergence:
  iptables drops that one TCP connection's packets (no other connection to the manager is
  touched), as a pulled cable or a dead NAT entry would. The run ends with an error naming the
  host and the silence (not a hang); the manager frees the lost session's lock once its
  heartbeat has been missing for the lease, and the rerun converges with no --break-lock.
* The manager's state folder full during the revision upload: a tiny tmpfs mounted over the
  stack's own state folder. The push fails naming the full disk, and no half-written revision
  is left behind: the history lists no revision without its stack file, and once there is room
  again the push converges.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from deployer.lock import LEASE_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"
DEPLOYER = [sys.executable, "-c", "import sys; from deployer.cli import main; sys.exit(main())"]


class FaultStack:
    """A stand-in stack on bed-remote (only sklearn-model running, slow to turn healthy so a
    fault lands while push waits), removed with its secrets, configs and state afterwards."""

    def __init__(self, bed: dict[str, Any], tmp: Path, base_port: int, kind: str) -> None:
        self.bed = bed
        self.manager = bed["managers"]["remote"]
        self.name = f"ft-{kind}-{uuid.uuid4().hex[:6]}"
        services: dict[str, Any] = {}
        names = ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image",
                 "mlflow-server"]
        for offset, name in enumerate(names):
            services[name] = {"published_port": base_port + offset, "replicas": 0}
        # First health probe after 12 s: the wait is long enough to cut it.
        services["sklearn-model"] = {"published_port": base_port + 2,
                                     "healthcheck": {"interval": "12s", "start_period": "0s"}}
        services["minio"] = {"published_port": base_port + 5,
                             "published_console_port": base_port + 6, "replicas": 0}
        self.values = tmp / f"{self.name}.yaml"
        self.values.write_text(yaml.safe_dump({"stack": {"name": self.name},
                                               "services": services}))
        self.api = docker.APIClient(base_url=self.manager["docker_host"])

    def argv(self, command: str, *extra: str) -> list[str]:
        return [*DEPLOYER, command, "-f", str(STANDIN_VALUES), "-f", str(self.values),
                "--host", self.manager["alias"], "--ssh-config", self.bed["ssh_config"], *extra]

    def run(self, command: str, *extra: str, timeout: float = 240) -> tuple[int, str]:
        proc = subprocess.run(self.argv(command, *extra), capture_output=True, text=True,
                              timeout=timeout, env=_env())
        return proc.returncode, proc.stdout + proc.stderr

    def rerun_once_the_lock_is_free(self) -> tuple[int, str]:
        """After a cut run: wait (bounded) until the manager freed its lock, as the lease says
        it will, then push again, which must converge without taking any lock over."""
        lock = self.state_dir / "lock"
        deadline = time.monotonic() + LEASE_SECONDS + 30
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert not lock.exists(), "the cut run's lock outlived its lease"
        code, out = self.run("push", "--timeout", "120")
        assert code == 0, out
        assert "took over" not in out, out
        return code, out

    @property
    def state_dir(self) -> Path:
        return Path(self.manager["state_dir"]) / self.name

    def sklearn_running(self) -> bool:
        label = f"com.docker.stack.namespace={self.name}"
        for svc in self.api.services(filters={"label": label}, status=True):
            if svc["Spec"]["Name"].endswith("_sklearn-model"):
                return int(svc.get("ServiceStatus", {}).get("RunningTasks", 0)) == 1
        return False

    def cleanup(self) -> None:
        subprocess.run(["docker", "-H", self.manager["docker_host"], "stack", "rm", self.name],
                       capture_output=True, check=False)
        label = f"com.docker.stack.namespace={self.name}"
        for _ in range(60):
            if not self.api.containers(filters={"label": label}, all=False):
                break
            time.sleep(0.5)
        for container in self.api.containers(filters={"label": label}, all=True):
            self.api.remove_container(container["Id"], force=True)
        for kind in ("secrets", "configs"):
            for obj in getattr(self.api, kind)(filters={"label": f"io.mlops.stack={self.name}"}):
                try:
                    getattr(self.api, f"remove_{kind[:-1]}")(obj["ID"])
                except docker.errors.APIError:
                    pass
        shutil.rmtree(self.state_dir, ignore_errors=True)


class Watched:
    """A push run as its own process, its output read line by line on a thread."""

    def __init__(self, argv: list[str], trigger: re.Pattern[str]) -> None:
        # faulthandler: a run that hangs is ended with SIGABRT, which prints every thread's
        # stack into its output (where it hung, in the failure message).
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**_env(), "PYTHONFAULTHANDLER": "1"})
        self.lines: list[str] = []
        self.triggered = threading.Event()
        self._trigger = trigger
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if self._trigger.search(line):
                self.triggered.set()
        self.triggered.set()  # the run ended without the trigger: the caller sees it

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float) -> int | None:
        """The exit code, or None if the run hung past ``timeout`` (then ended, its stacks in
        ``out``)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return None
        finally:
            self._reader.join(10)


def _env() -> dict[str, str]:
    return {**os.environ, "GOOGLE_API_KEY": "ft-" + uuid.uuid4().hex, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def cut_stack(bed: dict[str, Any], tmp_path: Path) -> Iterator[FaultStack]:
    stack = FaultStack(bed, tmp_path, 20400, "cut")
    yield stack
    stack.cleanup()


@pytest.fixture
def full_stack(bed: dict[str, Any], tmp_path: Path) -> Iterator[FaultStack]:
    stack = FaultStack(bed, tmp_path, 20410, "full")
    yield stack
    stack.cleanup()


# ---------------------------------------------------------------------------------------------
# The connection cut on the network side


class Cut:
    """DROP rules for one TCP connection (both directions), removed by ``restore``."""

    def __init__(self, local_port: int, manager_ip: str) -> None:
        tag = f"mlops-fault-{uuid.uuid4().hex[:8]}"
        self.rules = [
            ["OUTPUT", "-p", "tcp", "-d", manager_ip, "--dport", "22", "--sport",
             str(local_port), "-m", "comment", "--comment", tag, "-j", "DROP"],
            ["INPUT", "-p", "tcp", "-s", manager_ip, "--sport", "22", "--dport",
             str(local_port), "-m", "comment", "--comment", tag, "-j", "DROP"],
        ]
        for rule in self.rules:
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)

    def restore(self) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)


def _ssh_port_of(pid: int, manager_ip: str) -> int:
    """The local port of ``pid``'s established SSH connection to the manager."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"{manager_ip}:22"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]
            return int(local.rsplit(":", 1)[1])
    raise AssertionError(f"no SSH connection of pid {pid} to {manager_ip}:\n{out}")


def test_connection_cut_while_waiting_then_rerun_converges(cut_stack: FaultStack) -> None:
    stack = cut_stack
    manager_ip = stack.manager["host"]
    run = Watched(stack.argv("push", "--timeout", "180"), re.compile("stack-deploy"))
    cut: Cut | None = None
    try:
        assert run.triggered.wait(120) and run.proc.poll() is None, \
            "push never reached stack-deploy:\n" + run.out
        cut = Cut(_ssh_port_of(run.proc.pid, manager_ip), manager_ip)
        started = time.monotonic()
        code = run.finish(timeout=200)
        silent_for = time.monotonic() - started
    finally:
        if cut is not None:
            cut.restore()
        if run.proc.poll() is None:
            run.finish(timeout=1)
    out = run.out
    assert code is not None, "push hung after the cut:\n" + out
    print(f"push ended {silent_for:.0f} s after the cut")
    assert code != 0, out
    assert "Traceback" not in out, out
    # The dead link is noticed by TCP_USER_TIMEOUT (deployer.connectors.ssh_target), and the
    # error says what the push was doing then.
    assert f"connection lost: {stack.manager['alias']}" in out, out
    assert "stopped answering" in out and f"while waiting for stack {stack.name}" in out, out

    # The lost session's sshd still lives on the manager, but the lock's heartbeat stopped
    # with the cut: the manager frees the lock after its lease (deployer.lock). The rerun
    # needs no --break-lock.
    code, out = stack.rerun_once_the_lock_is_free()
    assert stack.sklearn_running()
    current = (stack.state_dir / "current").read_text().strip()
    assert (stack.state_dir / "revisions" / current / "stack.yml").is_file()
    assert not (stack.state_dir / "lock").exists(), "the lock outlived the run that took it"


# ---------------------------------------------------------------------------------------------
# The state folder full during the upload


def _manager_mounts(bed: dict[str, Any]) -> list[str]:
    """``nsenter`` into the mount namespace of the manager's sshd: the namespace's processes
    (so every command the deployer runs there) see mounts made in it, not the host's."""
    pidfile = Path(bed["managers"]["remote"]["state_dir"]).parents[1] / "run" / \
        "sshd_remote.daemon.pid"
    return ["nsenter", "-t", pidfile.read_text().strip(), "-m"]


def _files(ns: list[str], folder: Path) -> list[str]:
    """Every path under ``folder`` as the manager sees it, relative."""
    out = subprocess.run([*ns, "find", str(folder), "-mindepth", "1"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(line[len(str(folder)) + 1:] for line in out.splitlines())


def test_state_folder_full_during_upload_leaves_no_half_revision(
    full_stack: FaultStack, bed: dict[str, Any]
) -> None:
    stack = full_stack
    folder = stack.state_dir
    folder.mkdir(parents=True)
    ns = _manager_mounts(bed)
    # A 64 KB tmpfs over the stack's state folder, filled up to two free pages: room for the
    # lock and the audit lines, not for a revision's stack file.
    subprocess.run([*ns, "mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                    str(folder)], check=True, capture_output=True)
    try:
        subprocess.run([*ns, "sh", "-c", 'dd if=/dev/zero of="$1/filler" bs=4096 count=64 '
                        '2>/dev/null; truncate -s -8192 "$1/filler"', "fill", str(folder)],
                       check=True, capture_output=True)
        code, out = stack.run("push", "--timeout", "60")
        assert code != 0, out
        assert "Traceback" not in out, out
        assert re.search(r"no space left on device|disk (is )?full|no space", out, re.I), out
        files = _files(ns, folder)
        # Every revision folder left is whole (stack file + meta), or there is none: no
        # half-written revision, no temp file of an upload.
        revisions = {f.split("/")[1] for f in files if f.startswith("revisions/")
                     and f.count("/") >= 1}
        for number in revisions:
            assert {f"revisions/{number}/stack.yml", f"revisions/{number}/meta.json"} <= set(
                files), (files, out)
        assert not [f for f in files if ".tmp" in f or "/." in f], files
        assert "current" not in files, files
        assert "lock" not in files, f"the failed run left its lock: {files}"
    finally:
        subprocess.run([*ns, "umount", str(folder)], check=False, capture_output=True)
    # Room again (the real disk): the push converges and records a whole revision.
    code, out = stack.run("push", "--timeout", "120")
    assert code == 0, out
    assert stack.sklearn_running()
    current = (folder / "current").read_text().strip()
    assert sorted(p.name for p in (folder / "revisions" / current).iterdir()) == [
        "meta.json", "stack.yml"]
