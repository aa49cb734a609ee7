"""Dashboard refresh cost at 10 / 50 / 200 services vs `docker service ls`, and its memory.

Creates its own services (stack `tui-bench`, stand-in image, 0 replicas: nothing runs) on the
local engine, measures, and removes them. Ratios are printed, not asserted.

    .venv/bin/python bench/bench_tui_refresh.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from tui_stack import create_service, remove_stack  # noqa: E402

from deployer.connectors import connect  # noqa: E402
from tui.backend import DockerBackend  # noqa: E402

STACK = "tui-bench"


def median_seconds(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def dashboard_memory(backend: DockerBackend) -> float:
    from tui.app import make_app
    from tui.widgets.services_table import ServicesTable

    app = make_app(backend, stack=STACK, refresh_seconds=0.5)
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(200):
            tables = app.screen.query(ServicesTable)
            if tables and tables.first().row_count >= 200:
                break
            await pilot.pause(0.1)
        await pilot.pause(2)  # a few refreshes
        return rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    api = docker.APIClient(version="auto")
    backend = DockerBackend(lambda: connect(None), "local")
    calls: list[str] = []
    original = backend.api.request

    def counting(method: str, url: str, *a: Any, **kw: Any) -> Any:
        calls.append(url)
        return original(method, url, *a, **kw)

    backend.api.request = counting  # type: ignore[method-assign]
    remove_stack(api, STACK)
    print(f"{'services':>8} {'refresh ms':>11} {'API calls':>9} {'service ls ms':>14} {'ratio':>6}")
    try:
        created = 0
        for total in (10, 50, 200):
            while created < total:
                create_service(api, STACK, f"s{created:03d}", replicas=0)
                created += 1
            backend.snapshot(STACK)
            calls.clear()
            backend.snapshot(STACK)
            n_calls = len(calls)
            ours = median_seconds(lambda: backend.snapshot(STACK), args.rounds)
            cli = median_seconds(
                lambda: subprocess.run(
                    [
                        "docker",
                        "service",
                        "ls",
                        "--filter",
                        f"label=com.docker.stack.namespace={STACK}",
                    ],
                    check=True,
                    capture_output=True,
                ),
                args.rounds,
            )
            print(
                f"{total:>8} {ours * 1000:>11.1f} {n_calls:>9} {cli * 1000:>14.1f} "
                f"{ours / cli:>6.2f}x"
            )
        before = rss_mib()
        peak = asyncio.run(dashboard_memory(backend))
        print(
            f"dashboard with 200 services: RSS {peak:.0f} MiB (process before the app: "
            f"{before:.0f} MiB)"
        )
    finally:
        backend.close()
        remove_stack(api, STACK)


if __name__ == "__main__":
    main()
