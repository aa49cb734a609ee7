"""The three-node test cluster (scripts/testbed_cluster.py) for the tests that need it.

``cluster`` is a session fixture: it runs ``scripts/testbed cluster-up`` once (idempotent, ~2 s
warm, ~20 s cold) and yields the ``cluster`` facts. Import it into a test module with
``from cluster_bed import cluster  # noqa: F401``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
FACTS = REPO / ".testbed" / "facts.json"
TESTBED = [sys.executable, str(REPO / "scripts" / "testbed.py")]


def testbed(*args: str) -> None:
    proc = subprocess.run([*TESTBED, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"scripts/testbed {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def cluster() -> dict[str, Any]:
    """The cluster's facts (nodes by short name: manager, worker1, worker2)."""
    testbed("cluster-up")
    facts: dict[str, Any] = json.loads(FACTS.read_text())["cluster"]
    return facts


def node_api(cluster: dict[str, Any], name: str) -> docker.APIClient:
    return docker.APIClient(base_url=cluster["nodes"][name]["docker_host"], version="auto",
                            timeout=30)


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
