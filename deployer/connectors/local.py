"""The local machine: commands as subprocess argv, files on the local disk, the local engine."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.connectors.base import (
    CANCELLED,
    Connector,
    LineCallback,
    LineSplitter,
    RunResult,
    Stdin,
    stdin_chunks,
)
from deployer.errors import CommandError

if TYPE_CHECKING:
    import docker


class LocalConnector(Connector):
    """Runs on this machine; the Docker client talks to ``docker_host`` or ``$DOCKER_HOST``."""

    def __init__(self, docker_host: str | None = None) -> None:
        self.host = "local"
        self._docker_host = docker_host
        self._client: docker.DockerClient | None = None

    def run(
        self,
        argv: list[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        check: bool = True,
        on_line: LineCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        env = None
        if self._docker_host:
            env = {**os.environ, "DOCKER_HOST": self._docker_host}
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError as exc:
            raise CommandError(argv, 127, f"{argv[0]}: command not found", host=self.host) from exc
        flows = _Flows(proc, stdin, timeout, cancel)
        try:
            out = _read_stdout(proc, on_line)
            returncode = proc.wait()
        finally:
            flows.join()
        stderr = flows.stderr()
        if flows.feeder_error:
            raise flows.feeder_error[0]
        if flows.timed_out.is_set():
            raise CommandError(
                argv, -1, stderr + f"\ntimed out after {timeout:g} s", host=self.host
            )
        if cancel is not None and cancel.is_set():
            return RunResult(CANCELLED, out, stderr)
        return self._checked(argv, RunResult(returncode, out, stderr), check)

    def put_file(self, data: bytes, path: str, mode: int = 0o644) -> None:
        target = _local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def append_file(self, data: bytes, path: str) -> None:
        target = _local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab") as handle:
            handle.write(data)

    def get_file(self, path: str) -> bytes | None:
        try:
            return _local_path(path).read_bytes()
        except FileNotFoundError:
            return None

    def docker_client(self) -> docker.DockerClient:
        if self._client is None:
            from deployer.engine.client import local_client

            self._client = local_client(self._docker_host)
        return self._client

    def stream_client(self) -> docker.DockerClient:
        from deployer.engine.client import local_client

        return local_client(self._docker_host)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _local_path(path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else Path.home() / candidate


def _read_stdout(proc: subprocess.Popen[bytes], on_line: LineCallback | None) -> str:
    """The command's stdout: kept, or passed line by line to ``on_line`` as it arrives."""
    out = bytearray()
    splitter = LineSplitter(on_line) if on_line else None
    assert proc.stdout is not None
    # read1: return what is there now (progress lines), not a full 64 KiB block
    while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
        if splitter:
            splitter.feed(chunk)
        else:
            out += chunk
    if splitter:
        splitter.flush()
    return out.decode(errors="replace")


class _Flows:
    """The threads around one command: stdin is fed, stderr drained, the timeout and the
    cancel event watched, each on its own so a large input (an image stream) cannot deadlock
    against a chatty output."""

    def __init__(self, proc: subprocess.Popen[bytes], stdin: Stdin, timeout: float | None,
                 cancel: threading.Event | None) -> None:
        self._proc = proc
        self._stdin = stdin
        self._cancel = cancel
        self._err: list[bytes] = []
        self.feeder_error: list[BaseException] = []
        self.timed_out = threading.Event()
        self._threads = [threading.Thread(target=self._drain_stderr, daemon=True)]
        if cancel is not None:
            self._threads.append(threading.Thread(target=self._watch_cancel, daemon=True))
        if stdin is not None:
            self._threads.append(threading.Thread(target=self._feed, daemon=True))
        for thread in self._threads:
            thread.start()
        self._timer = threading.Timer(timeout, self._kill) if timeout is not None else None
        if self._timer:
            self._timer.start()

    def _feed(self) -> None:
        stream = self._proc.stdin
        assert stream is not None
        try:
            for chunk in stdin_chunks(self._stdin):
                stream.write(chunk)
                stream.flush()  # a slow producer's chunk (the lock's heartbeat) now, not later
        except BrokenPipeError:
            pass  # the command exited early; its exit code says why
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.feeder_error.append(exc)
            self._proc.kill()
        finally:
            try:
                stream.close()
            except BrokenPipeError:
                pass

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        self._err.append(self._proc.stderr.read())

    def _watch_cancel(self) -> None:
        assert self._cancel is not None
        while self._proc.poll() is None:
            if self._cancel.wait(0.2):
                self._proc.kill()
                return

    def _kill(self) -> None:
        self.timed_out.set()
        self._proc.kill()

    def join(self) -> None:
        if self._timer:
            self._timer.cancel()
        for thread in self._threads:
            thread.join()

    def stderr(self) -> str:
        return b"".join(self._err).decode(errors="replace")
