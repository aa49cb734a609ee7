"""Service log lines: the ``docker service logs`` argv and the parsing of what it prints.

Pure code. The reading (one command per service through the connector, the same on the local
engine and over SSH) is ``deployer.actions.logs``; the CLI and the dashboard both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from deployer.errors import ConfigError

_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
#: ``<timestamp> <task>@<node>    | <text>`` as ``docker service logs --timestamps`` prints it.
_LINE = re.compile(r"^(?:(?P<ts>\d{4}-\d\d-\d\dT\S+)\s+)?(?P<source>\S+?)\s*\|\s?(?P<text>.*)$")


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    since: str | None = None
    tail: int | None = None
    timestamps: bool = False


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a service wrote, and which replica (and node) wrote it."""

    service: str
    text: str
    timestamp: str = ""
    #: ``web.2@node1``: the task slot and node, as ``docker service logs`` names them.
    source: str = ""

    def render(self, *, prefix: bool, timestamps: bool) -> str:
        parts = []
        if timestamps and self.timestamp:
            parts.append(self.timestamp)
        if prefix:
            parts.append(f"{self.source or self.service} |")
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


def parse_line(raw: str, stack: str, service: str = "") -> LogLine:
    """One line of ``docker service logs --timestamps --no-task-ids`` of ``service`` (source
    without the ``<stack>_`` prefix)."""
    match = _LINE.match(raw)
    if match is None:
        return LogLine(service, raw)
    source = match.group("source").removeprefix(f"{stack}_")
    if not service:
        service = source.partition("@")[0].rpartition(".")[0] or source
    return LogLine(service, match.group("text"), match.group("ts") or "", source)
