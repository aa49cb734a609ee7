"""The rendered Swarm file deploys on the test bed's real Swarm and converges.

Uses the stand-in overlay (tests/data/values.standin.yaml): every service is the stand-in image,
dnsrr + host-mode ports (no IPVS on the bed), host ports in this suite's range 18000-18999.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from deployer.render import render, secret_name, swarm_configs, swarm_secret_bases
from deployer.values import StackValues, load_values

REPO = Path(__file__).resolve().parent.parent
PORTS = {
    "gradio-frontend": 18100, "llm-connector": 18101, "sklearn-model": 18102,
    "cnn-image": 18103, "mlflow-server": 18104, "minio": 18105,
}
CONSOLE_PORT = 18106
CONVERGE_TIMEOUT = 180.0

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _stack_values(stack: str, bucket: str) -> StackValues:
    sets = [f"stack.name={stack}", f"s3.bucket={bucket}",
            f"services.minio.published_console_port={CONSOLE_PORT}"]
    sets += [f"services.{name}.published_port={port}" for name, port in PORTS.items()]
    return load_values([REPO / "tests" / "data" / "values.standin.yaml"], sets)


def _stack_services(api: docker.APIClient, stack: str) -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = api.services(
        filters={"label": f"com.docker.stack.namespace={stack}"})
    return services


def _remove_stack(api: docker.APIClient, env: dict[str, str], stack: str) -> None:
    subprocess.run(["docker", "stack", "rm", stack], env=env, capture_output=True, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        leftovers = _stack_services(api, stack) or api.networks(
            filters={"label": f"com.docker.stack.namespace={stack}"})
        if not leftovers:
            return
        time.sleep(1)


def _remove_retrying(remove: Any, name: str) -> None:
    # A secret/config stays "in use" until the removed tasks are gone: retry for a while.
    deadline = time.monotonic() + 60
    while True:
        try:
            remove(name)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture
def deployed_stack(
    bed: dict[str, Any], docker_api: docker.APIClient, tmp_path: Path
) -> Iterator[tuple[str, StackValues]]:
    """Render the stand-in stack, create its secrets and configs, deploy; clean up after."""
    token = uuid.uuid4().hex[:8]
    stack = f"rt-e2e-{token}"
    # The bucket name makes the config's content (hence its name) unique to this test.
    values = _stack_values(stack, f"rt-{token}")
    version = f"rt{token}"
    secrets = [secret_name(base, version) for base in swarm_secret_bases(values)]
    configs = swarm_configs(values)
    env = {**os.environ, "DOCKER_HOST": bed["docker_host"]}
    try:
        for name in secrets:
            docker_api.create_secret(name, b"stand-in secret " + token.encode())
        for name, content in configs.items():
            docker_api.create_config(name, content.encode())
        rendered = render(values, "swarm",
                          secret_versions=dict.fromkeys(swarm_secret_bases(values), version))
        path = tmp_path / rendered.filename
        path.write_text(rendered.text)
        proc = subprocess.run(
            ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(path), stack],
            env=env, capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr
        yield stack, values
    finally:
        _remove_stack(docker_api, env, stack)
        for name in secrets:
            _remove_retrying(docker_api.remove_secret, name)
        for name in configs:
            _remove_retrying(docker_api.remove_config, name)


def _state(api: docker.APIClient, stack: str) -> dict[str, str]:
    """Per service: 'ok' once converged (N/N running, or the job completed), else a reason."""
    out: dict[str, str] = {}
    for svc in _stack_services(api, stack):
        name = svc["Spec"]["Name"].removeprefix(f"{stack}_")
        mode = svc["Spec"]["Mode"]
        tasks = api.tasks(filters={"service": svc["ID"]})
        states = [t["Status"]["State"] for t in tasks]
        if "ReplicatedJob" in mode:
            out[name] = "ok" if "complete" in states else f"job tasks {states}"
            continue
        desired = mode["Replicated"]["Replicas"]
        running = [t for t in tasks
                   if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]
        errors = sorted({t["Status"].get("Err", "") for t in tasks} - {""})
        out[name] = "ok" if len(running) == desired else (
            f"{len(running)}/{desired} running {errors}")
    return out


def test_rendered_swarm_file_deploys_and_converges(
    deployed_stack: tuple[str, StackValues], docker_api: docker.APIClient
) -> None:
    stack, values = deployed_stack
    expected = {*values.service_names(), *values.job_names()}
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    state: dict[str, str] = {}
    while time.monotonic() < deadline:
        state = _state(docker_api, stack)
        if set(state) == expected and all(v == "ok" for v in state.values()):
            break
        time.sleep(1)
    assert set(state) == expected
    assert all(v == "ok" for v in state.values()), state

    # Healthy in Docker's eyes (the stand-in answers the rendered healthcheck) ...
    for svc in _stack_services(docker_api, stack):
        name = svc["Spec"]["Name"].removeprefix(f"{stack}_")
        spec = svc["Spec"]["TaskTemplate"]["ContainerSpec"]
        if name in PORTS:
            assert spec["Healthcheck"]["Test"][0] == "CMD"
            assert svc["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
        assert spec["Init"] is True
    # ... and really serving on the published host-mode ports.
    for name, port in PORTS.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/whoami", timeout=5) as resp:
            assert json.load(resp)["service"] == name
