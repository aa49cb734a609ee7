"""bench/bench_ship.py runs end to end in a tiny mode and cleans up after itself. Its figures
are printed by the bench, never asserted here (bytes and times belong to the bench)."""

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


def test_bench_ship_tiny_run(bed: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_ship.py"), "--images", "2",
         "--scale", "0.001"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = re.search(r"^run ([0-9a-f]+):", proc.stdout, re.M)
    assert run is not None, proc.stdout
    for label in ("(a) first ship", "(a) ... cold local registry", "(b) code change"):
        line = next(line for line in proc.stdout.splitlines() if line.startswith(label))
        assert re.search(r"layers +\d+\.\d\d s +\d+\.\d{3} MB .* ratio +\d+\.\d\dx", line), line
    # None of the bench's images is left on either engine.
    for host in (bed["docker_host"], bed["managers"]["remote"]["docker_host"]):
        tags = [t for i in docker.APIClient(base_url=host).images()
                for t in (i.get("RepoTags") or ()) if run.group(1) in t]
        assert tags == [], (host, tags)
