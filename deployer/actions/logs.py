"""Reading service logs: one cancellable, chunked stream over the connector, for both front ends.

Each service is read by its own ``docker service logs`` command run through the connector (an
argv: shown with ``-v``, streamed line by line, the same on the local engine and over SSH), in a
thread feeding one bounded queue. The consumer takes lines in chunks (``read``): the CLI prints
them, the dashboard's worker posts them as one message per chunk. ``close`` cancels every command
without closing the connection, which the dashboard keeps using.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from deployer.connectors.base import CANCELLED
from deployer.errors import MlopsError
from deployer.logs import LogLine, LogOptions, logs_argv, parse_line

if TYPE_CHECKING:
    from deployer.connectors.base import Connector

#: Lines waiting for the consumer; a reader blocks (so its command pauses) when it is full.
QUEUE_LINES = 10_000


class LogStream:
    """Lines of one or more services, interleaved as they arrive, until closed."""

    def __init__(self, conn: Connector, stack: str | None, services: Mapping[str, str],
                 opts: LogOptions) -> None:
        """``services``: Swarm service name -> the short name its lines are labelled with."""
        self._conn = conn
        self._stack = stack
        self._opts = opts
        self._queue: queue.Queue[LogLine | None] = queue.Queue(maxsize=QUEUE_LINES)
        self._cancel = threading.Event()
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self.argvs = [logs_argv(name, opts) for name in services]
        self._threads = [
            threading.Thread(target=self._read, args=(argv, short), daemon=True,
                             name=f"logs-{argv[-1]}")
            for argv, short in zip(self.argvs, services.values(), strict=True)
        ]
        self._running = len(self._threads)
        self._started = False

    def start(self) -> LogStream:
        """Start the readers (once)."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()
        return self

    def _read(self, argv: list[str], service: str) -> None:
        def on_line(raw: str) -> None:
            if raw:
                self._put(parse_line(raw, self._stack or "", service))

        try:
            # The CLI writes what a container wrote to stderr on its own stderr: merge them so
            # both arrive as lines, in order (a service's errors are what one looks for).
            merged = ["sh", "-c", 'exec "$@" 2>&1', "mlops-logs", *argv]
            result = self._conn.run(merged, check=False, on_line=on_line, cancel=self._cancel)
            if result.returncode not in (0, CANCELLED):
                self._error(f"{argv[-1]}: `docker service logs` exited {result.returncode}")
        except MlopsError as exc:
            self._error(f"{argv[-1]}: {exc.message}")
        finally:
            self._put(None)

    def _error(self, text: str) -> None:
        if not self._cancel.is_set():
            with self._lock:
                self._errors.append(text)

    def _put(self, item: LogLine | None) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._cancel.is_set():  # nobody reads any more, the end marker included
                    return

    def read(self, max_lines: int, timeout: float) -> list[LogLine]:
        """Up to ``max_lines`` lines, waiting at most ``timeout`` seconds for the first."""
        lines: list[LogLine] = []
        wait: float | None = timeout
        while len(lines) < max_lines and self._running:
            try:
                item = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                break
            wait = None  # after the first line: only what is already there
            if item is None:
                self._running -= 1
            else:
                lines.append(item)
        return lines

    @property
    def finished(self) -> bool:
        """Every reader has ended and every line was read."""
        return self._started and self._running == 0

    @property
    def errors(self) -> list[str]:
        """Why readers ended early (for display)."""
        with self._lock:
            return list(self._errors)

    def close(self) -> None:
        """Cancel every reader's command; the connection stays open. Only the event is touched:
        this runs right after Ctrl-C, which may have interrupted ``read`` inside the queue's
        lock and left it held (draining the queue here could then block for ever); readers
        waiting on a full queue see the cancel instead."""
        self._cancel.set()


def print_stream(stream: LogStream, emit: Callable[[LogLine], None], *,
                 follow: bool) -> None:
    """Start ``stream`` and pass every line to ``emit`` until all readers ended: in arrival order
    when following, else merged by time once all are read (the CLI's ``logs``)."""
    stream.start()
    collected: list[LogLine] = []
    while not stream.finished:
        # A timeout keeps the wait interruptible by Ctrl-C on every platform.
        for line in stream.read(500, 0.5):
            if follow:
                emit(line)
            else:
                collected.append(line)
    # sorted() is stable: lines with equal timestamps keep each service's order.
    for line in sorted(collected, key=lambda item: item.timestamp):
        emit(line)
