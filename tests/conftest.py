"""Fixtures over the test bed (scripts/testbed): its facts, and clients for its real parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
FACTS = REPO / ".testbed" / "facts.json"
# Image shipping keeps a local registry's blobs between runs (deployer.shipping.registry): in
# tests under the bed's folder, never in the real ~/.mlops.
os.environ.setdefault("MLOPS_REGISTRY_DIR", str(REPO / ".testbed" / "ship-registry"))
# Likewise the local engine's stack state (locks, audit logs, revisions of test stacks).
os.environ.setdefault("MLOPS_STATE_DIR", str(REPO / ".testbed" / "state" / "local"))


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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright's sync API (never its own browser
    download). Module-scoped on purpose: a live sync Playwright holds an event loop on the main
    thread, which breaks every asyncio test (Textual's Pilot) that runs while it exists."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing. fix: apt-get install -y chromium (scripts/testbed "
                    "up installs it)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that may only reach loopback (anything else is aborted and recorded)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()
    assert outside == [], f"the page tried to reach outside hosts: {outside}"


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


#: Stack-name prefixes the tests use (see each test module); only these are swept.
TEST_STACK_PREFIXES = ("smoke-", "rt-", "dp-", "dp2-", "dp3-", "tui-", "tui2-", "e2e-")


def _sweep_test_stacks(api: docker.APIClient) -> None:
    """Remove what removed test stacks leave behind on an engine: Swarm keeps the exited
    containers of completed jobs after `docker stack rm`, and never removes volumes."""
    live = {s["Spec"]["Labels"].get("com.docker.stack.namespace", "")
            for s in api.services()}

    def gone_test_stack(labels: dict[str, str] | None) -> bool:
        stack = (labels or {}).get("com.docker.stack.namespace", "")
        return stack.startswith(TEST_STACK_PREFIXES) and stack not in live

    for container in api.containers(all=True, filters={"status": "exited"}):
        if gone_test_stack(container.get("Labels")):
            api.remove_container(container["Id"], force=True)
    for volume in api.volumes().get("Volumes") or []:
        if gone_test_stack(volume.get("Labels")):
            try:
                api.remove_volume(volume["Name"])
            except docker.errors.APIError:
                pass  # still in use by a container of a live stack


@pytest.fixture(scope="session", autouse=True)
def _sweep_after_session() -> Iterator[None]:
    yield
    if not FACTS.exists():
        return
    facts = json.loads(FACTS.read_text())
    for base_url in (facts["docker_host"], facts["managers"]["remote"]["docker_host"]):
        client = docker.APIClient(base_url=base_url, version="auto")
        try:
            _sweep_test_stacks(client)
        finally:
            client.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures tests recorded (tests/figures.py: fuzzed requests, load during an
    update) at the end of the run."""
    from tests.figures import lines

    figures = lines()
    if figures:
        terminalreporter.section("figures")
        for line in figures:
            terminalreporter.write_line(line)
