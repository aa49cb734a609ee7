"""bench/bench_push.py runs end to end in a tiny mode (one round each) and cleans up after itself.
Timings are printed by the bench, never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def test_bench_push_tiny_run(bed: dict[str, Any], docker_api: docker.APIClient) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_push.py"), "--rounds", "1",
         "--deploy-rounds", "1"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stack = re.search(r"^stack (dp-bench-[0-9a-f]+):", proc.stdout, re.M)
    assert stack is not None, proc.stdout
    for label in ("(a) no-op push vs stack deploy", "(b) first deploy to converged"):
        line = next(line for line in proc.stdout.splitlines() if line.startswith(label))
        assert re.search(r"ratio +\d+\.\d\dx", line), line
    # Nothing of the bench's stack is left on the manager.
    name = stack.group(1)
    label = f"com.docker.stack.namespace={name}"
    assert not docker_api.services(filters={"label": label})
    assert not docker_api.containers(all=True, filters={"label": label})
    assert not docker_api.secrets(filters={"label": f"io.mlops.stack={name}"})
    assert not docker_api.configs(filters={"label": f"io.mlops.stack={name}"})
    assert not (Path(bed["managers"]["loopback"]["state_dir"]) / name).exists()
