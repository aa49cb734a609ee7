"""The logs screen: one service, or a whole stack interleaved with service prefixes.

Lines arrive from a thread worker in chunks through a bounded buffer; the screen keeps the last
``CAPACITY`` lines so a service writing thousands of lines a second never freezes the UI or
grows memory without bound.
"""

from __future__ import annotations

import re
import time
from collections import deque

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Label, Log
from textual.worker import get_current_worker

from deployer.swarm import ServiceState
from tui.backend import Backend
from tui.logs import DEFAULT_CAPACITY, LogBuffer, LogLine, compile_pattern, matches
from tui.messages import LogLinesReceived, LogStreamEnded
from tui.screens.base import WorkerScreen

#: Tail sizes the `T` key cycles through (None: the whole log).
TAIL_SIZES: tuple[int | None, ...] = (200, 1000, 5000, None)
#: Lines a worker hands over per chunk (and the most it waits for a chunk to fill, seconds).
CHUNK_LINES = 1000
CHUNK_WAIT = 0.1
#: Least time between two wake-ups of the UI for new lines (seconds).
FLUSH_INTERVAL = 0.1
CAPACITY = DEFAULT_CAPACITY


class SearchHighlighter(Highlighter):
    """Highlights the search term in every rendered line."""

    def __init__(self) -> None:
        self.pattern: re.Pattern[str] | None = None

    def highlight(self, text: Text) -> None:
        if self.pattern is not None:
            text.highlight_regex(self.pattern, style="black on yellow")


class LogsScreen(WorkerScreen):
    """Follow, pause, filter, search, timestamps, tail size."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="logs.back"),
        Binding("f", "toggle_follow", "Follow", id="logs.follow"),
        Binding("p,space", "toggle_pause", "Pause", id="logs.pause"),
        Binding("slash", "focus_filter", "Filter", id="logs.filter"),
        Binding("ctrl+f", "focus_search", "Search", id="logs.search"),
        Binding("n", "next_match", "Next match", id="logs.next_match"),
        Binding("t", "toggle_timestamps", "Timestamps", id="logs.timestamps"),
        Binding("T", "cycle_tail", "Tail size", id="logs.tail"),
        Binding("c", "clear", "Clear", id="logs.clear", show=False),
    ]

    def __init__(self, services: list[ServiceState], title: str) -> None:
        super().__init__()
        self._title = title
        self._targets = list(services)
        self._prefix = len(services) > 1
        self._buffer = LogBuffer(CAPACITY)
        self._lines: deque[LogLine] = deque(maxlen=CAPACITY)
        self._shown: deque[LogLine] = deque(maxlen=CAPACITY)
        self._filter: re.Pattern[str] | None = None
        self._highlighter = SearchHighlighter()
        self._timestamps = False
        self._follow = True
        self._paused = False
        self._held = 0
        self._tail_index = 0
        self._match_at = -1
        self._ended = ""
        #: Lines received since the screen opened (kept or not): for status, tests and bench.
        self.received = 0

    @property
    def active_filter(self) -> str | None:
        """The filter applied to the shown lines (None: every line is shown)."""
        return self._filter.pattern if self._filter is not None else None

    @property
    def dropped(self) -> int:
        """Lines dropped because the UI fell more than ``CAPACITY`` lines behind."""
        return self._buffer.dropped

    @property
    def kept(self) -> int:
        """Lines held for re-rendering (never more than ``CAPACITY``)."""
        return len(self._lines)

    @property
    def backend(self) -> Backend:
        from tui.app import MlopsApp

        app = self.app
        assert isinstance(app, MlopsApp)
        return app.backend

    def compose(self) -> ComposeResult:
        yield Label("", id="logs-status")
        with Horizontal(id="logs-inputs"):
            yield Input(placeholder="filter (regex)", id="logs-filter")
            yield Input(placeholder="search (regex)", id="logs-search")
        log = Log(max_lines=CAPACITY, highlight=True, id="log")
        log.highlighter = self._highlighter
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self._start()

    def _start(self) -> None:
        self._buffer.drain()
        self._lines.clear()
        self._ended = ""
        self._rebuild()
        self.stream_logs(self._targets, TAIL_SIZES[self._tail_index])

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def stream_logs(self, targets: list[ServiceState], tail: int | None) -> None:
        """Worker: read lines in chunks into the buffer until cancelled."""
        worker = get_current_worker()
        stream = self.backend.open_logs(targets, tail=tail)
        last_wakeup = 0.0
        try:
            while not worker.is_cancelled:
                chunk = stream.read(CHUNK_LINES, CHUNK_WAIT)
                if chunk:
                    self._buffer.extend(chunk)
                elif stream.finished:
                    if len(self._buffer):
                        self.post_message(LogLinesReceived(len(self._buffer)))
                    break
                # Wake the UI at most every FLUSH_INTERVAL: each wake-up re-renders the view,
                # so a fast service gets big batches instead of a render per few lines.
                now = time.monotonic()
                if len(self._buffer) and now - last_wakeup >= FLUSH_INTERVAL:
                    last_wakeup = now
                    self.post_message(LogLinesReceived(len(self._buffer)))
        finally:
            stream.close()
        if not worker.is_cancelled:
            self.post_message(LogStreamEnded(stream.errors))

    @on(LogLinesReceived)
    def _lines_received(self, _: LogLinesReceived) -> None:
        lines = self._buffer.drain()
        self.received += len(lines)
        self._lines.extend(lines)
        if self._paused:
            self._held += len(lines)
        else:
            self._append(lines)
        self._update_status()

    @on(LogStreamEnded)
    def _stream_ended(self, message: LogStreamEnded) -> None:
        self._ended = "; ".join(message.errors) or "end of log"
        if message.errors:
            self.notify(self._ended, title="logs", severity="error")
        self._update_status()

    def _render_line(self, line: LogLine) -> str:
        return line.render(timestamps=self._timestamps, prefix=self._prefix)

    def _append(self, lines: list[LogLine]) -> None:
        shown = [line for line in lines if matches(line, self._filter)]
        if not shown:
            return
        self._shown.extend(shown)
        log = self.query_one(Log)
        log.auto_scroll = self._follow
        log.write_lines([self._render_line(line) for line in shown])

    def _rebuild(self) -> None:
        """Re-render every kept line (after a filter, timestamps or tail change)."""
        log = self.query_one(Log)
        log.clear()
        self._shown.clear()
        self._held = 0
        self._append(list(self._lines))
        self._update_status()

    def _update_status(self) -> None:
        tail = TAIL_SIZES[self._tail_index]
        parts = [
            f"logs: {self._title}",
            "paused" if self._paused else ("following" if self._follow else "not following"),
            f"tail {tail if tail is not None else 'all'}",
            f"{len(self._shown)} lines shown",
        ]
        if self._held:
            parts.append(f"{self._held} new while paused")
        if self._buffer.dropped:
            parts.append(f"{self._buffer.dropped} dropped (too fast)")
        if self._ended:
            parts.append(self._ended)
        # Fixed size (one line, full width): no layout pass per update, only a repaint.
        self.query_one("#logs-status", Label).update(Text("  ·  ".join(parts)), layout=False)

    # -- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        """Back to the services (or leave the input box)."""
        if isinstance(self.focused, Input):
            self.query_one(Log).focus()
            return
        self.workers.cancel_group(self, "logs")
        self.app.pop_screen()

    def action_toggle_follow(self) -> None:
        """Keep scrolling to the newest line, or stay where you are."""
        self._follow = not self._follow
        log = self.query_one(Log)
        log.auto_scroll = self._follow
        if self._follow:
            log.scroll_end(animate=False)
        self._update_status()

    def action_toggle_pause(self) -> None:
        """Stop showing new lines (they are kept) or show them again."""
        self._paused = not self._paused
        if not self._paused:
            self._rebuild()
        self._update_status()

    def action_toggle_timestamps(self) -> None:
        """Show or hide the engine's timestamps."""
        self._timestamps = not self._timestamps
        self._rebuild()

    def action_cycle_tail(self) -> None:
        """Read the log again with the next tail size."""
        self._tail_index = (self._tail_index + 1) % len(TAIL_SIZES)
        self._start()

    def action_clear(self) -> None:
        """Forget the lines read so far."""
        self._lines.clear()
        self._rebuild()

    def action_focus_filter(self) -> None:
        """Edit the filter."""
        self.query_one("#logs-filter", Input).focus()

    def action_focus_search(self) -> None:
        """Edit the search."""
        self.query_one("#logs-search", Input).focus()

    @on(Input.Changed, "#logs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        try:
            self._filter = compile_pattern(event.value)
        except re.error as exc:
            event.input.add_class("invalid")
            event.input.tooltip = f"invalid regex: {exc}"
            return
        event.input.remove_class("invalid")
        self._rebuild()

    @on(Input.Changed, "#logs-search")
    def _search_changed(self, event: Input.Changed) -> None:
        try:
            self._highlighter.pattern = compile_pattern(event.value)
        except re.error as exc:
            event.input.add_class("invalid")
            event.input.tooltip = f"invalid regex: {exc}"
            return
        event.input.remove_class("invalid")
        self._match_at = -1
        log = self.query_one(Log)
        log.refresh_lines(0, log.line_count) if log.line_count else None
        log.refresh()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "logs-search":
            self.action_next_match()
        self.query_one(Log).focus()

    def action_next_match(self) -> None:
        """Scroll to the next line matching the search (stops following)."""
        pattern = self._highlighter.pattern
        if pattern is None:
            return
        shown = list(self._shown)
        for offset in range(1, len(shown) + 1):
            index = (self._match_at + offset) % len(shown)
            if pattern.search(self._render_line(shown[index])):
                self._match_at = index
                self._follow = False
                log = self.query_one(Log)
                log.auto_scroll = False
                # The Log may have pruned its oldest lines: align on its end.
                y = log.line_count - len(shown) + index
                log.scroll_to(y=max(y - 2, 0), animate=False)
                self._update_status()
                return
        self.notify("no match", severity="warning")
