"""The logs view's side of log lines: a bounded thread-safe buffer, filters.

Pure code (no Docker). Lines are ``deployer.logs.LogLine``s, read by the deployer's own reader
(``deployer.actions.logs``), the same one ``deployer logs`` uses.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable

from deployer.logs import LogLine

__all__ = ["DEFAULT_CAPACITY", "LogBuffer", "LogLine", "compile_pattern", "matches"]

#: Lines kept for a logs view; older ones are dropped (a chatty service must not eat the memory).
DEFAULT_CAPACITY = 10_000



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
