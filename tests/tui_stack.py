"""Stand-in Swarm services for the dashboard's tests, recordings and benchmark.

Services are created with the Docker SDK and labelled as members of a stack (the label
``docker stack deploy`` sets), so the dashboard sees them exactly as it sees a deployed stack.

Run as a script to (re)record the snapshot the snapshot tests replay::

    .venv/bin/python tests/tui_stack.py record tests/data/swarm_tui_rec.json
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from docker.types import EndpointSpec, Healthcheck, RestartPolicy, ServiceMode

STANDIN = "mlops-standin:latest"
STACK_LABEL = "com.docker.stack.namespace"


def create_service(
    api: docker.APIClient,
    stack: str,
    name: str,
    *,
    replicas: int = 1,
    mode: str = "replicated",
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    port: int | None = None,
    image: str = STANDIN,
    fast_health: bool = True,
) -> str:
    """Create ``<stack>_<name>`` from the stand-in image; returns the service id."""
    environment = {"SERVICE_NAME": name, "PORT": "8080", **(env or {})}
    container = docker.types.ContainerSpec(
        image=image,
        args=args,
        env=[f"{k}={v}" for k, v in environment.items()],
        labels={STACK_LABEL: stack},
        stop_grace_period=2_000_000_000,
        healthcheck=Healthcheck(
            test=[
                "CMD",
                "python3",
                "-c",
                "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', "
                "timeout=2)",
            ],
            interval=1_000_000_000,
            timeout=2_000_000_000,
            retries=2,
            start_period=3_000_000_000,
        )
        if fast_health and not args
        else None,
    )
    restart = RestartPolicy(
        condition="none" if mode.endswith("job") else "any", delay=1_000_000_000
    )
    template = docker.types.TaskTemplate(container_spec=container, restart_policy=restart)
    if mode == "replicated":
        service_mode = ServiceMode("replicated", replicas=replicas)
    elif mode == "replicated-job":
        service_mode = ServiceMode("replicated-job", concurrency=1, replicas=replicas)
    else:
        service_mode = ServiceMode(mode)
    endpoint = EndpointSpec(
        mode="dnsrr",
        ports={port: (8080, "tcp", "host")} if port else None,
    )
    created = api.create_service(
        template,
        name=f"{stack}_{name}",
        labels={STACK_LABEL: stack},
        mode=service_mode,
        endpoint_spec=endpoint,
    )
    return str(created["ID"])


def remove_stack(api: docker.APIClient, stack: str) -> None:
    """Remove every service labelled as part of ``stack`` (missing ones are fine)."""
    for svc in api.services(filters={"label": f"{STACK_LABEL}={stack}"}):
        try:
            api.remove_service(svc["ID"])
        except docker.errors.NotFound:
            pass


def wait_for(
    predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.5, what: str = ""
) -> None:
    """Poll until ``predicate()`` holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


def running_replicas(api: docker.APIClient, service_id: str) -> tuple[int, int]:
    """(running, desired) as the engine reports them."""
    (svc,) = api.services(filters={"id": service_id}, status=True)
    status = svc.get("ServiceStatus") or {}
    return int(status.get("RunningTasks", 0)), int(status.get("DesiredTasks", 0))


def build_recording_stack(api: docker.APIClient, stack: str) -> None:
    """A small stack that shows every state the main screen renders."""
    create_service(api, stack, "web", replicas=2, port=21001, env={"HEARTBEAT_SECONDS": "1"})
    create_service(api, stack, "api", port=21002, env={"VERSION": "2"})
    create_service(api, stack, "sick", env={"FAIL_HEALTH": "1"})
    create_service(api, stack, "crash", args=["--exit", "3"])
    create_service(api, stack, "idle", replicas=0)
    create_service(api, stack, "migrate", mode="replicated-job", args=["--exit", "0"])
    create_service(api, stack, "agent", mode="global")


def record(path: Path, stack: str = "tui-rec") -> None:
    """Deploy the recording stack, let it settle into its mixed states, record it, remove it."""
    from tui.replay import record_snapshot

    api = docker.APIClient(version="auto")
    remove_stack(api, stack)
    try:
        build_recording_stack(api, stack)
        time.sleep(25)  # long enough for "sick" to fail its healthchecks and "crash" to retry
        recording: dict[str, Any] = record_snapshot(api, stack)
        web = next(s for s in recording["services"] if s["Spec"]["Name"] == f"{stack}_web")
        raw = api.service_logs(
            web["ID"], details=True, stdout=True, stderr=True, timestamps=True, tail=5
        )
        recording["logs"] = {"web": [b.decode().rstrip("\n") for b in raw]}
    finally:
        remove_stack(api, stack)
    path.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(Path(sys.argv[2]))
    else:
        sys.exit("usage: tui_stack.py record OUT.json")
