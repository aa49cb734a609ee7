"""Logs screen under a ~2,000 lines/s service: lines rendered per second vs lines produced, and
key-press-to-update latency while streaming vs idle. Ratios are printed, not asserted.

Creates two stand-in services on the local engine (stack `tui2-bench-logs`): `firehose`
(HEARTBEAT_SECONDS=0.0005; one stand-in replica writes ~1,000-1,300 lines/s here, so the
service runs 2 replicas) and `quiet` (no heartbeat); drives the dashboard headless with
Textual's Pilot; removes the services afterwards. The production rate is read from the
containers' own logs (each line carries the stand-in's counter), independently of the
dashboard.

    .venv/bin/python bench/bench_tui_logs.py [--seconds 10] [--presses 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from tui_stack import create_service, remove_stack, wait_for  # noqa: E402

from deployer.connectors import connect  # noqa: E402
from tui.backend import DockerBackend  # noqa: E402

STACK = "tui2-bench-logs"
LINE = "bench-line"
NUMBERED = re.compile(rf"{LINE} (\d+)$")


def produced(api: docker.APIClient, service_id: str) -> int:
    """Lines written so far by every running task of a service (the stand-in's counters)."""
    total = 0
    for task in api.tasks(filters={"service": service_id, "desired-state": "running"}):
        container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
        if not container:
            continue
        tail = api.logs(container, stdout=True, stderr=False, tail=3).decode().splitlines()
        counters = [int(m.group(1)) for m in map(NUMBERED.search, tail) if m]
        total += counters[-1] if counters else 0
    return total


async def measure(
    api: docker.APIClient, service: str, service_id: str, seconds: float, presses: int
) -> dict[str, float]:
    """Open the logs of ``service``; lines/s over ``seconds``; latency of ``presses`` keys."""
    from textual.widgets import Label

    from tui.app import make_app
    from tui.screens.logs import LogsScreen
    from tui.widgets.services_table import ServicesTable

    backend = DockerBackend(lambda: connect(None), "local")
    app = make_app(backend, stack=STACK, refresh_seconds=2)
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(300):
            tables = app.screen.query(ServicesTable)
            table = tables.first() if tables else None
            if table is not None and any(
                str(table.get_row_at(i)[0]) == service for i in range(table.row_count)
            ):
                break
            await pilot.pause(0.1)
        assert table is not None
        row = next(i for i in range(table.row_count) if str(table.get_row_at(i)[0]) == service)
        table.move_cursor(row=row)
        await pilot.pause()
        await pilot.press("l")
        while not isinstance(app.screen, LogsScreen):
            await pilot.pause(0.05)
        screen = app.screen
        status = screen.query_one("#logs-status", Label)
        await pilot.pause(2.0)  # past the initial tail and the reader's start

        start_received, start_produced = screen.received, produced(api, service_id)
        start = time.perf_counter()
        await pilot.pause(seconds)
        end_produced = produced(api, service_id)
        elapsed = time.perf_counter() - start
        await pilot.pause(1.0)  # lines in flight at the end of the window
        out["rendered_per_s"] = (screen.received - start_received) / (elapsed + 1.0)
        out["produced_per_s"] = (end_produced - start_produced) / elapsed
        out["dropped"] = screen.dropped

        latencies = []
        for _ in range(presses):
            before = str(status.render())
            t0 = time.perf_counter()
            # simulate_key sends the key at once; Pilot.press would then wait for the process
            # to go idle (never, while streaming), which is not what a user waits for.
            app.simulate_key("f")  # follow toggle: a status change, no re-render of lines
            while str(status.render()) == before:
                await asyncio.sleep(0)
            latencies.append(time.perf_counter() - t0)
            await pilot.pause(0.05)
        out["key_ms_median"] = statistics.median(latencies) * 1000
        out["key_ms_max"] = max(latencies) * 1000
        # A filter keystroke re-renders every kept line: the heaviest key of the screen.
        await pilot.press("slash")
        await pilot.pause(0.2)
        t0 = time.perf_counter()
        app.simulate_key("7")
        while screen.active_filter != "7":  # set, and every kept line re-filtered
            await asyncio.sleep(0)
        out["filter_ms"] = (time.perf_counter() - t0) * 1000
        out["kept"] = screen.kept
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--presses", type=int, default=20)
    args = parser.parse_args()
    api = docker.APIClient(version="auto")
    remove_stack(api, STACK)
    try:
        ids = [
            create_service(
                api, STACK, "firehose", replicas=2,
                env={"HEARTBEAT_SECONDS": "0.0005", "LOG_LINE": LINE},
            ),
            create_service(api, STACK, "quiet"),
        ]
        for sid in ids:
            wait_for(
                lambda sid=sid: all(
                    t["Status"]["State"] == "running"
                    for t in api.tasks(filters={"service": sid, "desired-state": "running"})
                ),
                60,
                what="services running",
            )
        idle = asyncio.run(measure(api, "quiet", ids[1], 2.0, args.presses))
        streaming = asyncio.run(measure(api, "firehose", ids[0], args.seconds, args.presses))
    finally:
        remove_stack(api, STACK)
    print(f"streaming: produced {streaming['produced_per_s']:.0f} lines/s, rendered "
          f"{streaming['rendered_per_s']:.0f} lines/s "
          f"(ratio {streaming['rendered_per_s'] / max(streaming['produced_per_s'], 1):.2f}), "
          f"kept {streaming['kept']:.0f} lines, dropped {streaming['dropped']:.0f}")
    print(f"{'key press -> status updated':<30} {'idle':>9} {'streaming':>10} {'ratio':>6}")
    for key, label in (("key_ms_median", "median ms"), ("key_ms_max", "max ms"),
                       ("filter_ms", "filter keystroke ms")):
        ratio = streaming[key] / idle[key] if idle[key] else float("nan")
        print(f"{label:<30} {idle[key]:>9.1f} {streaming[key]:>10.1f} {ratio:>5.1f}x")


if __name__ == "__main__":
    main()
