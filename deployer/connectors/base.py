"""The interface every connector implements: run an argv, move files, open a Docker client."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployer.errors import CommandError

if TYPE_CHECKING:
    import docker

#: What a command's stdin can be: nothing, the whole input, or chunks streamed as they come
#: (e.g. a ``docker save`` stream piped into ``docker load``).
Stdin = bytes | str | Iterable[bytes] | None

#: The exit code of a command ended through its ``cancel`` event.
CANCELLED = -2

#: Called with each chunk of a streamed command's stdout (decoded text, split on newlines).
LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """The outcome of one command: exit code and its (decoded) output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Connector(abc.ABC):
    """A host we run commands on: the local machine, or a manager over SSH.

    Commands are argv lists; a connector never builds a shell string out of user input.
    One connector is one connection for a whole run: reuse it for every command and the Docker
    API, then ``close()`` it (or use it as a context manager).
    """

    #: A label for messages and the audit log (``local``, ``root@10.0.0.5:22``). Never secrets.
    host: str

    @abc.abstractmethod
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
        """Run ``argv``; feed ``stdin``; return its result.

        With ``on_line`` the stdout is delivered line by line as it arrives (progress, logs) and
        not kept in ``RunResult.stdout``. With ``check`` a non-zero exit raises ``CommandError``.
        ``timeout`` bounds the whole command (``CommandError`` with returncode -1 when hit).
        Setting ``cancel`` ends the command (killed locally, its channel closed over SSH) and
        returns ``CANCELLED`` as its exit code, without raising: how a log follow is stopped
        while the connection carries on.
        """

    @abc.abstractmethod
    def put_file(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically: a temp name in the same directory, then rename.

        Parent directories are created. A relative ``path`` is relative to the home directory.
        """

    @abc.abstractmethod
    def append_file(self, data: bytes, path: str) -> None:
        """Append ``data`` to ``path`` in one write (lines of concurrent writers stay whole);
        the file and its parent directories are created if missing."""

    @abc.abstractmethod
    def get_file(self, path: str) -> bytes | None:
        """The content of ``path``, or ``None`` if it does not exist."""

    @abc.abstractmethod
    def docker_client(self) -> docker.DockerClient:
        """A Docker SDK client for this host's engine (created once, reused, closed with us)."""

    @abc.abstractmethod
    def stream_client(self) -> docker.DockerClient:
        """A Docker client of its own, for one long stream the caller may have to abandon
        (closing it ends that stream's connection, and the engine's work for it); the caller
        closes it."""

    def lost(self) -> str | None:
        """Why this connection is gone (a link cut mid-run), or None while it works. A local
        connector has no link to lose."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection and the Docker client. Safe to call twice."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Helpers shared by the implementations.

    def _checked(self, argv: list[str], result: RunResult, check: bool) -> RunResult:
        if check and result.returncode != 0:
            raise CommandError(argv, result.returncode, result.stderr, host=self.host)
        return result


class LineSplitter:
    """Turns a stream of byte chunks into complete decoded lines for a callback."""

    def __init__(self, callback: LineCallback) -> None:
        self._callback = callback
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._callback(line.decode(errors="replace").rstrip("\r"))

    def flush(self) -> None:
        if self._buffer:
            self._callback(self._buffer.decode(errors="replace").rstrip("\r"))
            self._buffer = b""


def stdin_chunks(stdin: Stdin) -> Iterable[bytes]:
    """``stdin`` as an iterable of byte chunks (empty for ``None``)."""
    if stdin is None:
        return ()
    if isinstance(stdin, str):
        return (stdin.encode(),)
    if isinstance(stdin, bytes):
        return (stdin,)
    return stdin
