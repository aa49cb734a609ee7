"""Fixtures of the service tests: service images built FROM the bed's base image."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from svcutil import SERVICES, docker_cli

HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
@pytest.fixture(scope="session")
def service_image(bed: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Builds services/<name> FROM the bed's base image; returns the image tag."""
    built: dict[str, str] = {}

    def _build(name: str) -> str:
        if name in built:
            return built[name]
        context = tmp_path_factory.mktemp(f"ctx-{name}") / name
        ignore = shutil.ignore_patterns("__pycache__", ".mypy_cache")
        shutil.copytree(SERVICES / name, context, ignore=ignore)
        # The shared library goes beside the service's files, as `deployer build` sends it.
        shutil.copytree(SERVICES / "mlops_serving", context / "mlops_serving", ignore=ignore)
        (context / "certs").mkdir(exist_ok=True)
        for cert in sorted(HOST_CA_DIR.glob("*.crt")):
            shutil.copy(cert, context / "certs" / cert.name)
        tag = f"mlops-svctest/{name}:e2e"
        # BuildKit, as `deployer build` runs (the Dockerfiles' cache mounts need it; the
        # layers it caches are shared with the other builds of the run).
        docker_cli(bed, "buildx", "build", "--build-arg", f"BASE_IMAGE={bed['base_image']}",
                   "-t", tag, str(context))
        built[name] = tag
        return tag

    return _build
