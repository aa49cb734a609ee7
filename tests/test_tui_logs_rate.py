"""Logs of a service writing ~2,000 lines/s (the stand-in with HEARTBEAT_SECONDS=0.0005) on the
test bed's real Swarm: lines arrive, the kept lines stay capped, and key presses (pause,
filter) still take effect while the stream runs. No timing assertions (see
bench/bench_tui_logs.py for rates and latencies).

One stand-in replica writes ~1,000-1,300 lines/s on the bed (a Python loop sleeping 0.5 ms),
so the service runs two replicas: ~2,300 lines/s measured by the bench.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from textual.pilot import Pilot
from textual.widgets import Label, Log
from tui_stack import create_service, remove_stack

from deployer.connectors import connect
from tui.app import MlopsApp, make_app
from tui.backend import DockerBackend
from tui.screens.logs import CAPACITY, LogsScreen
from tui.screens.main import MainScreen
from tui.widgets.services_table import ServicesTable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (150, 40)
LINE = "firehose-line"  # no digits: a digit filter then matches the counter only
NUMBERED = re.compile(rf"{LINE} (\d+)$")


@pytest.fixture
def stack(docker_api: docker.APIClient) -> Iterator[str]:
    name = f"tui2-{uuid.uuid4().hex[:6]}"
    yield name
    remove_stack(docker_api, name)


async def until(
    pilot: Pilot[None], predicate: Callable[[], bool], what: str, timeout: float = 90
) -> None:
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def counter(line: str) -> int:
    match = NUMBERED.search(line)
    assert match, line
    return int(match.group(1))


async def open_logs(pilot: Pilot[None], app: MlopsApp, name: str) -> LogsScreen:
    main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    table = main.query_one(ServicesTable)

    def running() -> bool:
        return any(
            str(table.get_row_at(i)[0]) == name and str(table.get_row_at(i)[2]) == "2/2"
            for i in range(table.row_count)
        )

    await until(pilot, running, f"{name} running (2/2)")
    row = next(i for i in range(table.row_count) if str(table.get_row_at(i)[0]) == name)
    table.move_cursor(row=row)
    await pilot.pause()
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs screen")
    assert isinstance(app.screen, LogsScreen)
    return app.screen


async def test_logs_at_2000_lines_per_second_stay_capped_and_responsive(
    bed: dict[str, Any], docker_api: docker.APIClient, stack: str
) -> None:
    create_service(
        docker_api, stack, "firehose", replicas=2,
        env={"HEARTBEAT_SECONDS": "0.0005", "LOG_LINE": LINE},
    )
    backend = DockerBackend(lambda: connect(None, docker_host=bed["docker_host"]), "local")
    app = make_app(backend, stack=stack, refresh_seconds=1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_logs(pilot, app, "firehose")
        log = screen.query_one(Log)
        status = screen.query_one("#logs-status", Label)

        # Lines arrive, and more than the cap: what is kept and shown stays capped.
        await until(pilot, lambda: screen.received > CAPACITY + 2000, "more lines than the cap")
        assert screen.kept <= CAPACITY
        assert log.line_count <= CAPACITY
        # The newest lines are the ones shown: counters beyond the cap (two replicas count
        # on their own, so at least one of them has written more than half of it).
        assert max(counter(line) for line in log.lines if NUMBERED.search(line)) > CAPACITY // 2

        # Pause: nothing new is shown while lines keep arriving; resume shows them again.
        await pilot.press("p")
        assert "paused" in str(status.render())
        frozen = list(log.lines[-3:])
        received = screen.received
        await until(pilot, lambda: screen.received > received + 1000, "lines while paused")
        assert list(log.lines[-3:]) == frozen
        assert "new while paused" in str(status.render())
        await pilot.press("p")
        assert "following" in str(status.render())
        await until(pilot, lambda: list(log.lines[-3:]) != frozen, "new lines after resuming")

        # Filter: typed while streaming, applies to what is shown and to what keeps arriving.
        await pilot.press("slash", "7", "7", "7")
        await until(pilot, lambda: "777" in str(screen.query_one("#logs-filter").value), "typed")
        assert screen.active_filter == "777"
        await until(pilot, lambda: log.line_count > 0, "matching lines")
        first = list(log.lines)
        await until(pilot, lambda: list(log.lines) != first, "more matching lines")
        assert all("777" in line for line in log.lines), log.lines[:5]
        assert screen.kept <= CAPACITY

        # Escape leaves the input, a second one the screen (the reader stops).
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back on main")
