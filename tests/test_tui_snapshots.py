"""Snapshot tests of the dashboard's screens, from a snapshot recorded on the test bed.

Fixed terminal size and time zone; the recording fixes every time shown (ages are measured from
the recording's own time). Update with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tui.app import MlopsApp, make_app
from tui.replay import ReplayBackend
from tui.widgets.services_table import ServicesTable

RECORDING = Path(__file__).parent / "data" / "swarm_tui_rec.json"
SIZE = (140, 40)


@pytest.fixture(autouse=True)
def _pinned_time_zone() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def replay_app(**kwargs: Any) -> MlopsApp:
    return make_app(
        ReplayBackend.from_file(RECORDING),
        stack="tui-rec",
        refresh_seconds=3600,  # one read; no timer fires during a snapshot
        **kwargs,
    )


async def loaded(pilot: Pilot[None]) -> None:
    """Wait for the first refresh to fill the services table."""
    for _ in range(100):
        if (
            pilot.app.screen.query(ServicesTable)
            and pilot.app.screen.query_one(ServicesTable).row_count
        ):
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_main_screen(snap_compare: Any) -> None:
    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=loaded)


def test_main_screen_tasks_of_a_crashing_service_and_drift(snap_compare: Any) -> None:
    async def select_crash(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("down", "down")

    app = replay_app(declared_replicas={"web": 1, "api": 3})
    assert snap_compare(app, terminal_size=SIZE, run_before=select_crash)


def test_logs_screen(snap_compare: Any) -> None:
    async def open_web_logs(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press(*["down"] * 6, "l")  # web is the last row
        await pilot.pause(0.3)

    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=open_web_logs)


def test_restart_confirmation(snap_compare: Any) -> None:
    async def ask_restart(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("down", "r")
        await pilot.pause()

    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=ask_restart)


def test_filter(snap_compare: Any) -> None:
    async def filter_w(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("slash", "w", "e")
        await pilot.pause()

    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=filter_w)


async def test_help_and_command_palette_list_every_action() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")
        titles = {cmd.title for cmd in app.get_system_commands(app.screen)}
        for binding in app.screen.BINDINGS:
            assert binding.description in titles  # type: ignore[union-attr]
            assert binding.id  # type: ignore[union-attr]
        assert {"Scale", "Restart", "Rollback", "Remove", "Logs"} <= titles


async def test_actions_on_a_recording_are_refused_with_a_toast() -> None:
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("down", "plus")
        for _ in range(50):
            if any("recording" in n.message for n in app._notifications):
                break
            await pilot.pause(0.05)
        assert any("recording" in n.message for n in app._notifications)
