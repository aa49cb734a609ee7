"""Fixtures of the service tests: a headless Chromium (Debian's package) for Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from svcutil import SERVICES, docker_cli

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _install_chromium() -> None:
    # Playwright's own browser download cannot work here; Debian's chromium does.
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's `chromium` package "
                    "(apt-get install -y chromium) and run the tests again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                               "chromium"], capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"installing chromium failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        _install_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def service_image(bed: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Builds services/<name> FROM the bed's base image; returns the image tag."""
    built: dict[str, str] = {}

    def _build(name: str) -> str:
        if name in built:
            return built[name]
        context = tmp_path_factory.mktemp(f"ctx-{name}") / name
        shutil.copytree(SERVICES / name, context,
                        ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"))
        for cert in sorted(HOST_CA_DIR.glob("*.crt")):
            shutil.copy(cert, context / "certs" / cert.name)
        tag = f"mlops-svctest/{name}:e2e"
        docker_cli(bed, "build", "--build-arg", f"BASE_IMAGE={bed['base_image']}",
                   "-t", tag, str(context))
        built[name] = tag
        return tag

    return _build
