"""Render time per target, in-process, median of N runs; printed as ms and as ratios.

Baseline: a plain ``yaml.safe_dump`` of the values (what "rendering" costs with no templates and
no validation). Columns: rendering alone (Jinja2 + YAML re-parse + Compose-schema + semantic
checks) and, for Swarm, with ``docker stack config`` (one subprocess) when a docker CLI exists.
Nothing is asserted; run `python bench/bench_render.py [-n N]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable

import yaml

from deployer.render import TARGETS, render
from deployer.values import load_values


def median_ms(fn: Callable[[], object], n: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``n`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="runs per measurement (default 30)")
    args = parser.parse_args()

    values = load_values()
    data = values.model_dump(mode="json", by_alias=True)
    baseline = median_ms(lambda: yaml.safe_dump(data, sort_keys=True), args.n)
    load = median_ms(load_values, args.n)
    print(f"baseline yaml.safe_dump(values): {baseline:8.2f} ms")
    print(f"load_values (defaults file)   : {load:8.2f} ms  ({load / baseline:6.1f}x)")
    total = 0.0
    for target in TARGETS:
        ms = median_ms(lambda t=target: render(values, t, docker_check=False), args.n)
        total += ms
        print(f"render {target:<8} (no docker)  : {ms:8.2f} ms  ({ms / baseline:6.1f}x)")
    print(f"render all targets (no docker): {total:8.2f} ms  ({total / baseline:6.1f}x)")
    if shutil.which("docker"):
        ms = median_ms(lambda: render(values, "swarm"), args.n)
        print(f"render swarm + stack config   : {ms:8.2f} ms  ({ms / baseline:6.1f}x)")


if __name__ == "__main__":
    main()
