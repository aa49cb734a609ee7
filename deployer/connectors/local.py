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

        # stdin, stdout and stderr each get their own flow so a large input (an image stream)
        # cannot deadlock against a chatty output.
        def feed() -> None:
            assert proc.stdin is not None
            try:
                for chunk in stdin_chunks(stdin):
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # the command exited early; its exit code says why
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                feeder_error.append(exc)
                proc.kill()
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass

        err_chunks: list[bytes] = []
        feeder_error: list[BaseException] = []

        def drain_stderr() -> None:
            assert proc.stderr is not None
            err_chunks.append(proc.stderr.read())

        def watch_cancel() -> None:
            assert cancel is not None
            while proc.poll() is None:
                if cancel.wait(0.2):
                    proc.kill()
                    return

        threads = [threading.Thread(target=drain_stderr, daemon=True)]
        if cancel is not None:
            threads.append(threading.Thread(target=watch_cancel, daemon=True))
        if stdin is not None:
            threads.append(threading.Thread(target=feed, daemon=True))
        for thread in threads:
            thread.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        if timer:
            timer.start()
        out = bytearray()
        splitter = LineSplitter(on_line) if on_line else None
        assert proc.stdout is not None
        try:
            # read1: return what is there now (progress lines), not a full 64 KiB block
            while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
                if splitter:
                    splitter.feed(chunk)
                else:
                    out += chunk
            if splitter:
                splitter.flush()
            returncode = proc.wait()
        finally:
            if timer:
                timer.cancel()
            for thread in threads:
                thread.join()
        stderr = b"".join(err_chunks).decode(errors="replace")
        if feeder_error:
            raise feeder_error[0]
        if timed_out.is_set():
            raise CommandError(
                argv, -1, stderr + f"\ntimed out after {timeout:g} s", host=self.host
            )
        if cancel is not None and cancel.is_set():
            return RunResult(CANCELLED, out.decode(errors="replace"), stderr)
        result = RunResult(returncode, out.decode(errors="replace"), stderr)
        return self._checked(argv, result, check)

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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _local_path(path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else Path.home() / candidate
