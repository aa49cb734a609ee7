"""Pure parts of the dashboard: log lines, the bounded log buffer, drift, formatting."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from test_swarm_model import service

from deployer.logs import parse_line
from deployer.swarm import parse_snapshot
from tui.drift import declared_replicas, replica_drift
from tui.logs import LogBuffer, LogLine, compile_pattern, matches
from tui.messages import LogLinesReceived, ServicesRefreshed
from tui.widgets.formatting import format_age

RAW = "2026-11-26T12:14:28.011310493Z tui-rec_web.1@vm    | web alive 22 | x=1"


def test_the_dashboard_parses_log_lines_as_deployer_logs_does() -> None:
    # One reader for both front ends: the line as `docker service logs --timestamps` prints it.
    line = parse_line(RAW + "\n", "tui-rec", "web")
    assert line == LogLine(
        service="web",
        text="web alive 22 | x=1",
        timestamp="2026-11-26T12:14:28.011310493Z",
        source="web.1@vm",
    )
    assert line.render(timestamps=False, prefix=True) == "web.1@vm | web alive 22 | x=1"
    assert line.render(timestamps=True, prefix=False).startswith("2026-11-26T12:14:28")
    # Without the stack, the service is taken from the source.
    assert parse_line(RAW, "tui-rec").service == "web"


def test_a_line_not_in_that_shape_keeps_its_text() -> None:
    line = parse_line("plain text a=b, not details", "api", "api")
    assert (line.text, line.timestamp, line.source, line.service) == (
        "plain text a=b, not details", "", "", "api",
    )
    assert line.render(timestamps=False, prefix=True) == "api | plain text a=b, not details"


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
