"""Fixtures over the test bed (scripts/testbed): its facts, and clients for its real parts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
FACTS = REPO / ".testbed" / "facts.json"


def _bring_bed_up() -> None:
    # The README's test command brings the bed up first; this covers a bare `pytest` run.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "testbed.py"), "up"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the test bed did not come up:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def bed() -> dict[str, Any]:
    """The test bed's connection facts (see scripts/testbed.py `write_facts`)."""
    if not FACTS.exists():
        _bring_bed_up()
    facts: dict[str, Any] = json.loads(FACTS.read_text())
    return facts


@pytest.fixture(scope="session")
def docker_api(bed: dict[str, Any]) -> Iterator[docker.APIClient]:
    """A low-level Docker API client on the bed's host engine."""
    client = docker.APIClient(base_url=bed["docker_host"], version="auto")
    yield client
    client.close()


@pytest.fixture(scope="session")
def remote_docker_api(bed: dict[str, Any]) -> Iterator[docker.APIClient]:
    """A low-level Docker API client on the namespace manager's engine (its local socket)."""
    client = docker.APIClient(base_url=bed["managers"]["remote"]["docker_host"], version="auto")
    yield client
    client.close()
