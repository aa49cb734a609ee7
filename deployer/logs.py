"""``logs``: the lines of one service, or of the whole stack interleaved with service prefixes.

Each service is read with ``docker service logs`` run through the connector (an argv: shown with
``-v``, streamed line by line, the same on the local engine and over SSH). For several services
one reader thread each feeds a queue; without ``--follow`` the lines are merged by timestamp, with
it they are printed as they arrive. The main thread only waits on the queue, so Ctrl-C lands
there: the readers are told to stop and the connection's close ends their commands.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from deployer.errors import ConfigError, MlopsError

if TYPE_CHECKING:
    from deployer.connectors.base import Connector

_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
#: ``<timestamp> <task>@<node>    | <text>`` as ``docker service logs --timestamps`` prints it.
_LINE = re.compile(r"^(?:(?P<ts>\d{4}-\d\d-\d\dT\S+)\s+)?(?P<source>\S+?)\s*\|\s?(?P<text>.*)$")


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    since: str | None = None
    tail: int | None = None
    timestamps: bool = False


@dataclass(frozen=True, order=True)
class LogLine:
    timestamp: str
    source: str
    text: str

    def render(self, *, prefix: bool, timestamps: bool) -> str:
        parts = []
        if timestamps and self.timestamp:
            parts.append(self.timestamp)
        if prefix:
            parts.append(f"{self.source} |")
        parts.append(self.text)
        return " ".join(parts)


def check_since(value: str) -> str:
    """Validate ``--since``: a Go duration as the docker CLI takes it (``10m``, ``1h30m``,
    ``45s``) or an RFC 3339 time / date; ``ConfigError`` otherwise."""
    text = value.strip()
    if _DURATION.fullmatch(text):
        return text
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a duration like 10m / 1h30m or a time like "
            "2026-01-02T13:23:37Z"
        ) from None
    return text


def logs_argv(full_name: str, opts: LogOptions) -> list[str]:
    """``docker service logs`` of one service; always with timestamps (to interleave), task
    ids left out (the slot is enough to tell replicas apart)."""
    argv = ["docker", "service", "logs", "--timestamps", "--no-task-ids"]
    if opts.follow:
        argv.append("--follow")
    if opts.since:
        argv += ["--since", opts.since]
    if opts.tail is not None:
        argv += ["--tail", str(opts.tail)]
    return [*argv, full_name]


def parse_line(raw: str, stack: str) -> LogLine:
    """One line of ``docker service logs --timestamps --no-task-ids`` (source without the
    ``<stack>_`` prefix and the ``@node`` suffix on single-node output kept short)."""
    match = _LINE.match(raw)
    if match is None:
        return LogLine("", "", raw)
    source = match.group("source").removeprefix(f"{stack}_")
    return LogLine(match.group("ts") or "", source, match.group("text"))


class LogReaders:
    """One ``docker service logs`` per service, in threads, into one queue."""

    def __init__(self, conn: Connector, stack: str, services: Sequence[str],
                 opts: LogOptions) -> None:
        self._conn = conn
        self._stack = stack
        self._opts = opts
        self._queue: queue.Queue[LogLine | None] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.argvs = [logs_argv(f"{stack}_{s}", opts) for s in services]
        self._threads = [
            threading.Thread(target=self._read, args=(argv,), daemon=True,
                             name=f"logs-{argv[-1]}")
            for argv in self.argvs
        ]

    def _read(self, argv: list[str]) -> None:
        def on_line(raw: str) -> None:
            if raw and not self._stop.is_set():
                self._queue.put(parse_line(raw, self._stack))

        try:
            # The CLI writes what a container wrote to stderr on its own stderr: merge them so
            # both arrive as lines, in order (a service's errors are what one looks for).
            merged = ["sh", "-c", 'exec "$@" 2>&1', "mlops-logs", *argv]
            result = self._conn.run(merged, check=False, on_line=on_line)
            if result.returncode != 0 and not self._stop.is_set():
                self.errors.append(f"{argv[-1]}: `docker service logs` exited "
                                   f"{result.returncode}")
        except MlopsError as exc:
            if not self._stop.is_set():
                self.errors.append(f"{argv[-1]}: {exc.message}")
        finally:
            self._queue.put(None)

    def stream(self, emit: Callable[[LogLine], None]) -> None:
        """Start the readers and pass every line to ``emit`` until all have ended: in
        arrival order when following, else merged by time once all are read."""
        for thread in self._threads:
            thread.start()
        running = len(self._threads)
        collected: list[LogLine] = []
        while running:
            try:
                # A timeout keeps the wait interruptible by Ctrl-C on every platform.
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
            elif self._opts.follow:
                emit(item)
            else:
                collected.append(item)
        # sorted() is stable: lines with equal timestamps keep each service's order.
        for line in sorted(collected, key=lambda item: item.timestamp):
            emit(line)

    def stop(self) -> None:
        """Ask the readers to stop (closing the connector then ends their commands)."""
        self._stop.set()
