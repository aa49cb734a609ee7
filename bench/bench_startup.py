"""Whole-process start-up of the front ends against baselines run side by side, interleaved.

Each round runs every command once, in turn, so a busy machine slows all of them alike; the
medians are printed in seconds and as ratios:

* ``python3 -c pass`` (the interpreter alone) and ``docker stack services`` (the engine's own
  CLI listing a stack) are the baselines;
* ``deployer --help``, ``deployer status`` on the local engine (the default stack name, so the
  values are loaded as a user's run loads them), ``mlops-tui --help``;
* with ``--tui``: ``mlops-tui`` to its first snapshot on screen (the app run headless by a small
  driver that exits once the main screen holds a snapshot);
* with ``--before DIR`` (a checkout of an older commit, e.g. ``git worktree add /tmp/old REV``):
  the same commands from that tree's code, in the same rounds, for before/after figures.

Targets (issue "one way to act on a stack"): ``deployer --help`` <= 0.15 s and ``deployer status``
<= 0.45 s on this machine. Nothing is asserted; run ``python bench/bench_startup.py [-n N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A headless first paint: the dashboard on the local engine, quit once the services table got
# its first snapshot.
FIRST_PAINT = """
import asyncio
from deployer.connectors import connect
from tui.app import make_app
from tui.backend import DockerBackend
from tui.messages import ServicesRefreshed

async def main():
    app = make_app(DockerBackend(lambda: connect(None), "local"), stack=%r)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(400):
            await pilot.pause(0.025)
            if getattr(app.screen, "snapshot", None) is not None:
                return
asyncio.run(main())
"""


Command = tuple[list[str], Path]


def ours(stack: str, tui: bool, tree: Path, label: str = "") -> dict[str, Command]:
    """The front ends of the code in ``tree`` (run with it first on the path)."""
    python = sys.executable
    found = {
        f"{label}deployer --help": ([python, "-m", "deployer.cli", "--help"], tree),
        f"{label}deployer status": ([python, "-m", "deployer.cli", "status", "--set",
                                     f"stack.name={stack}"], tree),
        f"{label}mlops-tui --help": ([python, "-m", "tui.cli", "--help"], tree),
    }
    if tui:
        found[f"{label}mlops-tui first paint"] = ([python, "-c", FIRST_PAINT % stack], tree)
    return found


def commands(stack: str, tui: bool, before: Path | None) -> dict[str, Command]:
    found: dict[str, Command] = {"python3 -c pass": ([sys.executable, "-c", "pass"], REPO)}
    if shutil.which("docker"):
        found["docker stack services"] = (["docker", "stack", "services", stack], REPO)
    found.update(ours(stack, tui, REPO))
    if before is not None:
        found.update(ours(stack, tui, before, "before: "))
    return found


#: As a user's shell runs them: bytecode caches written (the first round writes them, as a
#: user's first run does). With PYTHONDONTWRITEBYTECODE, set in some sandboxes and CI shells,
#: every run would compile the project's own modules again (0.07-0.09 s of `deployer status`).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"TERM": "dumb"}


def timed(command: Command) -> float:
    argv, cwd = command
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env=ENV | {"PYTHONPATH": str(cwd)}, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--stack", default="mlops", help="stack to list (default mlops)")
    parser.add_argument("--tui", action="store_true", help="also time the dashboard's first paint")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="a checkout of an older commit to time side by side")
    args = parser.parse_args()
    table = commands(args.stack, args.tui, args.before)
    times: dict[str, list[float]] = {name: [] for name in table}
    for command in table.values():  # warm the page cache once
        timed(command)
    for _ in range(args.n):
        for name, argv in table.items():
            times[name].append(timed(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    python = medians["python3 -c pass"]
    docker = medians.get("docker stack services")
    print(f"{'command':<24} {'median s':>9} {'x python':>9} {'x docker':>9}")
    for name, value in medians.items():
        vs_docker = f"{value / docker:9.2f}" if docker else "        -"
        print(f"{name:<24} {value:9.3f} {value / python:9.2f} {vs_docker}")


if __name__ == "__main__":
    main()
