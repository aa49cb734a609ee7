"""Log lines of Swarm services: parsing the engine's lines, a bounded thread-safe buffer, filters.

Pure code (no Docker): the backend feeds raw lines in, the logs screen reads :class:`LogLine`s.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Lines kept for a logs view; older ones are dropped (a chatty service must not eat the memory).
DEFAULT_CAPACITY = 10_000

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\s")
_DETAILS = re.compile(r"^((?:[\w.\-]+=[^,\s]*)(?:,[\w.\-]+=[^,\s]*)*)\s")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a service wrote, with where it came from."""

    service: str
    text: str
    timestamp: str = ""
    task_id: str = ""
    source: str = ""  # "<service>.<slot>" when the task is known, else the service name

    def render(self, *, timestamps: bool, prefix: bool) -> str:
        """The line as the logs view shows it."""
        parts = []
        if timestamps and self.timestamp:
            parts.append(self.timestamp)
        if prefix:
            parts.append(f"{self.source or self.service} |")
        parts.append(self.text)
        return " ".join(parts)


def parse_log_line(
    raw: str, service: str, task_sources: Mapping[str, str] | None = None
) -> LogLine:
    """Split a line from the service logs endpoint (``timestamps`` and ``details`` on).

    The engine writes ``<RFC3339 timestamp> <k=v,k=v details> <text>``; both prefixes are
    optional so lines read without them parse too. ``task_sources`` maps task ids to a display
    source such as ``web.1``.
    """
    text = raw.rstrip("\r\n")
    timestamp = ""
    match = _TIMESTAMP.match(text)
    if match:
        timestamp = match.group(1)
        text = text[match.end() :]
    task_id = ""
    match = _DETAILS.match(text)
    if match and "com.docker." in match.group(1):
        details = dict(item.split("=", 1) for item in match.group(1).split(","))
        task_id = details.get("com.docker.swarm.task.id", "")
        text = text[match.end() :]
    source = (task_sources or {}).get(task_id, service)
    return LogLine(service=service, text=text, timestamp=timestamp, task_id=task_id, source=source)


class LogBuffer:
    """A bounded buffer shared by a log-reading thread (producer) and the UI (consumer).

    ``extend`` never blocks; when the consumer falls behind, the oldest unread lines are dropped
    and counted in ``dropped`` rather than growing without limit.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._pending: deque[LogLine] = deque(maxlen=capacity)
        self.dropped = 0

    def extend(self, lines: Iterable[LogLine]) -> None:
        """Append lines (from any thread)."""
        with self._lock:
            for line in lines:
                if len(self._pending) == self._pending.maxlen:
                    self.dropped += 1
                self._pending.append(line)

    def drain(self) -> list[LogLine]:
        """Take every pending line (from the UI thread)."""
        with self._lock:
            lines = list(self._pending)
            self._pending.clear()
            return lines

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def compile_pattern(text: str) -> re.Pattern[str] | None:
    """A case-insensitive regex from user input; None for empty input.

    Raises ``re.error`` for an invalid expression (the screen shows it).
    """
    if not text:
        return None
    return re.compile(text, re.IGNORECASE)


def matches(line: LogLine, pattern: re.Pattern[str] | None) -> bool:
    """The line passes the filter (its source or its text match)."""
    if pattern is None:
        return True
    return bool(pattern.search(line.text) or pattern.search(line.source or line.service))
