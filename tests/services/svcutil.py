"""Helpers for the service tests: loopback ports in this suite's range, service processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
#: The Python package of each service folder that has one (named after the service).
PACKAGES = {"sklearn-model": "sklearn_model", "cnn-image": "cnn_image",
            "llm-connector": "llm_connector", "gradio-frontend": "gradio_frontend"}
#: Where the services' code imports from: the shared library (services/mlops_serving), each
#: service's package, the mlflow-server and S3 store entrypoints. All at once: every name is
#: unique, so no service hides another's modules.
IMPORT_PATHS = [str(SERVICES), *(str(SERVICES / name) for name in PACKAGES),
                str(SERVICES / "mlflow-server"), str(SERVICES / "minio")]
for _path in reversed(IMPORT_PATHS):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def pythonpath(environ: dict[str, str] | None = None) -> str:
    """``PYTHONPATH`` for a service subprocess: :data:`IMPORT_PATHS` before ``environ``'s."""
    given = (os.environ if environ is None else environ).get("PYTHONPATH")
    return os.pathsep.join([*IMPORT_PATHS, *([given] if given else [])])
# Host ports owned by the service tests (other suites use other ranges on the shared engine).
PORT_RANGE = range(19600, 19700)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port of PORT_RANGE that nothing listens on (and this process has not handed out)."""
    for port in PORT_RANGE:
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def wait_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> httpx.Response:
    """Polls ``url`` until it answers 200; fails with the process log if it died or never did."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}:\n{_tail(log)}")
        try:
            resp = httpx.get(url, timeout=2.0)
            if resp.status_code == 200:
                return resp
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s:g}s ({last}):\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class ServiceProcess:
    """Runs ``python -m <package>`` of ``services/<name>`` on 127.0.0.1:<port> with ``env``.

    Output goes to a log file (tests read it to check what was logged); stop() ends exactly
    this process (by its PID).
    """

    def __init__(self, name: str, port: int, env: dict[str, str], log_dir: Path,
                 health_path: str = "/health") -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log_dir / f"{name}-{port}.log"
        self._health = health_path
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("GOOGLE_", "GEMINI_", "LLM_", "SKLEARN_", "CNN_"))}
        self._env = {**base, "HOST": "127.0.0.1", "PORT": str(port),
                     "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath(base), **env}
        self._out: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> ServiceProcess:
        """Starts the process and waits for its health endpoint."""
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", PACKAGES[self.name]], cwd=SERVICES / self.name, env=self._env,
            stdout=self._out, stderr=subprocess.STDOUT,
        )
        wait_http(self.url + self._health, timeout_s, self.proc, self.log)
        return self

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Terminates this process (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._out is not None:
            self._out.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def docker_cli(bed: dict[str, Any], *args: str, check: bool = True,
               timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Runs the docker CLI on the bed's engine (``build`` is the legacy builder, ``buildx build``
    BuildKit); fails with its output."""
    env = {**os.environ, "DOCKER_HOST": bed["docker_host"], "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
