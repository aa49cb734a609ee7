"""The registry process on the deploying machine (CNCF distribution, Debian's ``docker-registry``).

It listens on 127.0.0.1 only, keeps its blobs under the local state dir (so layers pushed by one
run are reused by the next, and by every project image sharing them) and lives for one shipping
session: started on first use, stopped by its pidfile when the session closes. A lock file
serialises sessions of concurrent runs on this machine; a registry left behind by a killed run
is stopped (by its pidfile) before a new one starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from deployer.errors import DeployError

BINARY = "docker-registry"
STATE_ENV = "MLOPS_STATE_DIR"
#: Overrides the whole directory (e.g. one shared by several checkouts' test runs).
DIR_ENV = "MLOPS_REGISTRY_DIR"
#: Under the local state dir; a dot name never collides with a stack's directory.
DIR_NAME = ".ship-registry"


class RegistryUnavailable(DeployError):
    """No registry can run here (the caller falls back to save/load and says why)."""


def registry_dir() -> Path:
    """``$MLOPS_REGISTRY_DIR``, else ``$MLOPS_STATE_DIR/.ship-registry`` (default
    ``~/.mlops/.ship-registry``)."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    base = os.environ.get(STATE_ENV) or str(Path("~/.mlops").expanduser())
    return Path(base) / DIR_NAME


def config_text(root: Path, port: int) -> str:
    """The registry's config: loopback only, filesystem storage, deletes allowed, quiet logs."""
    return "\n".join([
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "",
    ])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalRegistry:
    """One registry process for one shipping session (a context manager)."""

    def __init__(self, directory: Path | None = None, *, start_timeout: float = 20.0) -> None:
        self.dir = directory or registry_dir()
        self.port = 0
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def pidfile(self) -> Path:
        return self.dir / "registry.pid"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        """The registry program's path, or ``RegistryUnavailable`` naming the package."""
        found = shutil.which(BINARY) or (f"/usr/bin/{BINARY}"
                                         if Path(f"/usr/bin/{BINARY}").exists() else None)
        if found is None:
            raise RegistryUnavailable(
                f"{BINARY} is not installed on this machine",
                fix=f"apt-get install {BINARY} (Debian/Ubuntu) to ship only changed layers",
            )
        return found

    def start(self, wait_lock: float = 600.0) -> None:
        binary = self.binary()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock(wait_lock)
        self._stop_leftover()
        self.port = self._stable_port()
        config = self.dir / "config.yml"
        config.write_text(config_text(self.dir / "data", self.port))
        log = (self.dir / "registry.log").open("ab")
        self._proc = subprocess.Popen(
            [binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.pidfile.write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RegistryUnavailable(
            f"the local registry ({BINARY}) did not start on {self.address}",
            fix=f"see {self.dir / 'registry.log'}",
        )

    def _stable_port(self) -> int:
        # The same port every session: the engine remembers which layers it pushed where by
        # registry host:port, and only then mounts them into a new repository instead of
        # compressing and uploading them again.
        path = self.dir / "port"
        try:
            port = int(path.read_text().strip())
            with socket.socket() as sock:
                # As the registry binds (Go sets it): a port in TIME_WAIT from our last
                # session is free to reuse.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
            return port
        except (OSError, ValueError):
            port = _free_port()
            path.write_text(f"{port}\n")
            return port

    def lock(self, wait: float = 600.0) -> None:
        """Take the directory's lock (one session, or a garbage-collect, at a time)."""
        handle = (self.dir / "lock").open("w")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise RegistryUnavailable(
                        f"another run is shipping images from {self.dir} (waited "
                        f"{wait:.0f} s)", fix="wait for it to finish, then rerun") from None
                time.sleep(0.5)
        self._lock = handle

    def _stop_leftover(self) -> None:
        # We hold the lock: a registry named by the pidfile belongs to a run that died.
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if _alive(pid) and BINARY.encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid):
                    break
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, keep_lock: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL), remove the pidfile, release the lock
        (unless ``keep_lock``: offline work on the directory follows, then ``unlock``)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.pidfile.unlink(missing_ok=True)
        if not keep_lock:
            self.unlock()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
