"""Pure parts of the dashboard: log line parsing, the bounded log buffer, drift, formatting."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from test_swarm_model import service

from deployer.swarm import parse_snapshot
from tui.drift import declared_replicas, replica_drift
from tui.logs import LogBuffer, LogLine, compile_pattern, matches, parse_log_line
from tui.messages import LogLinesReceived, ServicesRefreshed
from tui.widgets.formatting import format_age

RAW = (
    "2026-11-26T12:14:28.011310493Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,"
    "com.docker.swarm.task.id=t1 web alive 22"
)


def test_parse_log_line_with_timestamp_and_details() -> None:
    line = parse_log_line(RAW + "\n", "web", {"t1": "web.1"})
    assert line == LogLine(
        service="web",
        text="web alive 22",
        timestamp="2026-11-26T12:14:28.011310493Z",
        task_id="t1",
        source="web.1",
    )
    assert line.render(timestamps=False, prefix=True) == "web.1 | web alive 22"
    assert line.render(timestamps=True, prefix=False).startswith("2026-11-26T12:14:28")


def test_parse_log_line_without_prefixes_keeps_text() -> None:
    line = parse_log_line("plain text a=b, not details", "api")
    assert (line.text, line.timestamp, line.task_id, line.source) == (
        "plain text a=b, not details",
        "",
        "",
        "api",
    )
    # key=value text that is not the engine's details stays part of the message
    assert parse_log_line("x=1 started", "api").text == "x=1 started"


def test_log_buffer_caps_and_counts_dropped_lines() -> None:
    buffer = LogBuffer(capacity=100)
    lines = [LogLine("s", str(i)) for i in range(250)]
    threads = [threading.Thread(target=buffer.extend, args=(lines[i::5],)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(buffer) == 100 and buffer.dropped == 150
    assert len(buffer.drain()) == 100 and len(buffer) == 0


def test_filter_patterns() -> None:
    line = LogLine("web", "GET /health 200", source="web.2")
    assert matches(line, None)
    assert matches(line, compile_pattern("health"))
    assert matches(line, compile_pattern("WEB\\.2"))
    assert not matches(line, compile_pattern("^POST"))
    assert compile_pattern("") is None
    with pytest.raises(Exception):  # noqa: B017 - re.error, whatever its module path
        compile_pattern("(")


def test_log_wakeups_coalesce_but_refreshes_do_not() -> None:
    assert LogLinesReceived(3).can_replace(LogLinesReceived(5))
    snap = parse_snapshot([], [])
    assert not ServicesRefreshed(snap, []).can_replace(ServicesRefreshed(snap, []))


def test_replica_drift_only_for_replicated_services_that_differ() -> None:
    snap = parse_snapshot(
        [
            service("a", "web", desired=3, running=3),
            service("b", "api", desired=1),
            service("c", "agent", mode={"Global": {}}),
            service("d", "other", desired=2),
        ],
        [],
    )
    declared = {"web": 1, "api": 1, "agent": 5}
    assert replica_drift(snap.services, declared) == {"web": 1}
    assert replica_drift(snap.services, None) == {}


def test_declared_replicas_from_values_overrides() -> None:
    declared = declared_replicas([], ["services.minio.replicas=3"])
    assert declared["minio"] == 3 and declared["gradio-frontend"] == 1


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59, "59s"), (60, "1m"), (7200, "2h"), (90000, "1d")]
)
def test_format_age(seconds: int, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text
