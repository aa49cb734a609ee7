"""The service images under the stack's rendered contract: the environment, secrets paths,
command and healthcheck that `deployer render` produces, applied to a container of each image.

A container is started (default bridge network, nothing published) with the rendered Swarm
environment, the secrets mounted where Swarm mounts them, the rendered command (if any) and the
rendered healthcheck; the test waits for Docker to call it healthy. So a template change that
breaks an image (a renamed variable, another health path or probe tool) fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from svcutil import REPO, docker_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEAWEED_VALUES = ["--set", "s3.backend=seaweedfs"]


def render_swarm(*sets: str) -> dict[str, Any]:
    """The rendered swarm-stack.yml as data."""
    proc = subprocess.run(
        [sys.executable, "-m", "deployer.cli", "render", "--target", "swarm", "--stdout",
         *sets], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = yaml.safe_load(proc.stdout)
    return data


@pytest.fixture
def contract_run(bed: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Runs an image as the rendered service ``name`` would run; removes it afterwards."""
    started: list[str] = []

    def _run(image: str, service: dict[str, Any], secrets: dict[str, str],
             extra_env: dict[str, str] | None = None) -> str:
        secret_dir = tmp_path / f"secrets-{len(started)}"
        secret_dir.mkdir()
        os.chmod(secret_dir, 0o755)
        for target, value in secrets.items():
            (secret_dir / target).write_text(value)
            os.chmod(secret_dir / target, 0o444)  # Swarm mounts secrets 0444 by default
        wanted = {s["target"] for s in service.get("secrets", [])}
        assert wanted == set(secrets), f"the service mounts secrets {sorted(wanted)}"
        name = f"svccontract-{uuid.uuid4().hex[:10]}"
        argv = ["run", "-d", "--name", name, "-v", f"{secret_dir}:/run/secrets:ro"]
        if service.get("init"):
            argv.append("--init")
        for key, value in {**service.get("environment", {}), **(extra_env or {})}.items():
            argv += ["-e", f"{key}={value}"]
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", test
        # docker run takes the shell form only: quote the exec form's arguments.
        argv += ["--health-cmd", shlex.join(test[1:]), "--health-interval", "1s",
                 "--health-timeout", "5s", "--health-retries", "60"]
        command = service.get("command") or []
        docker_cli(bed, *argv, image, *command)
        started.append(name)
        return name

    yield _run
    for name in started:
        docker_cli(bed, "rm", "-f", name, check=False)


def wait_healthy(bed: dict[str, Any], name: str, timeout_s: float = 120) -> None:
    """Waits for Docker's health status ``healthy`` (fails with the last probe output)."""
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = json.loads(docker_cli(bed, "inspect", "--format", "{{json .State}}", name).stdout)
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state.get("Running"):
            break
        time.sleep(1)
    logs = docker_cli(bed, "logs", name, check=False)
    probes = state.get("Health", {}).get("Log", [])[-2:]
    raise AssertionError(f"{name} not healthy: {json.dumps(probes)[:1500]}\n"
                         f"{(logs.stdout + logs.stderr)[-2000:]}")


def in_container(bed: dict[str, Any], name: str, code: str) -> str:
    """Runs Python code inside the container; returns its stdout."""
    return docker_cli(bed, "exec", name, "python3", "-c", code).stdout


_GET = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}{path}').read().decode())"


def test_llm_connector_under_swarm_contract(
    bed: dict[str, Any], service_image: Callable[[str], str],
    contract_run: Callable[..., str],
) -> None:
    service = render_swarm()["services"]["llm-connector"]
    assert service["environment"]["GOOGLE_API_KEY_FILE"] == "/run/secrets/google_api_key"
    name = contract_run(service_image("llm-connector"), service,
                        {"google_api_key": "AIzaCONTRACT-key\n"})
    wait_healthy(bed, name)
    port = service["ports"][0]["target"]
    health = json.loads(in_container(bed, name, _GET.format(port=port, path="/health")))
    assert health == {"status": "ok", "model": service["environment"]["GOOGLE_MODEL"],
                      "api_key_configured": True, "api_key_source": "file", "problem": None}


def test_gradio_frontend_under_swarm_contract(
    bed: dict[str, Any], service_image: Callable[[str], str],
    contract_run: Callable[..., str],
) -> None:
    service = render_swarm()["services"]["gradio-frontend"]
    name = contract_run(service_image("gradio-frontend"), service, {})
    wait_healthy(bed, name)
    port = service["ports"][0]["target"]
    health = json.loads(in_container(bed, name, _GET.format(port=port, path="/health")))
    env = service["environment"]
    assert health["backends"] == {"llm_connector": env["LLM_CONNECTOR_URL"],
                                  "sklearn_model": env["SKLEARN_MODEL_URL"],
                                  "cnn_image": env["CNN_IMAGE_URL"]}


S3_SECRETS = {"s3_access_key": "contractak", "s3_secret_key": "contract-secret-0123"}


def _buckets(bed: dict[str, Any], name: str) -> list[str]:
    # The container is not published; list from inside it with weed's own admin shell.
    out = docker_cli(bed, "exec", name, "sh", "-c",
                     "echo s3.bucket.list | weed shell -master=127.0.0.1:9001").stdout
    return [line.split()[0] for line in out.splitlines() if "size:" in line]


def test_s3_image_as_rendered_seaweedfs_command(
    bed: dict[str, Any], service_image: Callable[[str], str],
    contract_run: Callable[..., str],
) -> None:
    """The rendered seaweedfs service as is (its own sh -c command, wget probe), image swapped."""
    service = render_swarm(*SEAWEED_VALUES)["services"]["minio"]
    assert service["command"][:2] == ["sh", "-c"]
    name = contract_run(service_image("minio"), service, S3_SECRETS)
    wait_healthy(bed, name)


def test_s3_image_with_its_entrypoint_creates_the_bucket(
    bed: dict[str, Any], service_image: Callable[[str], str], contract_run: Callable[..., str]
) -> None:
    """The values overrides that let the image do its whole job (see the services report)."""
    values = render_swarm(*SEAWEED_VALUES, "--set", "services.minio.command=[]",
                          "--set", "services.minio.healthcheck.path=/healthz",
                          "--set", "services.minio.healthcheck.probe=python")
    service = values["services"]["minio"]
    assert "command" not in service
    name = contract_run(service_image("minio"), service, S3_SECRETS,
                        extra_env={"S3_BUCKET": "mlflow"})
    wait_healthy(bed, name)
    deadline = time.monotonic() + 60
    while "mlflow" not in _buckets(bed, name):
        assert time.monotonic() < deadline, "bucket mlflow was not created"
        time.sleep(1)
