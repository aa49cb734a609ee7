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


def bed_command(*args: str) -> None:
    proc = subprocess.run([*TESTBED, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"scripts/testbed {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def cluster() -> dict[str, Any]:
    """The cluster's facts (nodes by short name: manager, worker1, worker2)."""
    bed_command("cluster-up")
    facts: dict[str, Any] = json.loads(FACTS.read_text())["cluster"]
    # Push gives every node the images under the refs the stack file uses (the bed loaded the
    # stand-in's layers onto each node: only the tag is new there).
    return facts


@pytest.fixture(scope="session")
def engine_managers() -> dict[str, Any]:
    """The engine managers' facts (``managers`` by kind: 26.1, 26.1-containerd; ``ssh_config``),
    after ``scripts/testbed engines-up``."""
    bed_command("engines-up")
    facts: dict[str, Any] = json.loads(FACTS.read_text())["engines"]
    return facts


def node_api(cluster: dict[str, Any], name: str) -> docker.APIClient:
    return docker.APIClient(base_url=cluster["nodes"][name]["docker_host"], version="auto",
                            timeout=30)


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 120,
               show: Callable[[], object] | None = None) -> None:
    """Poll ``probe``; on a timeout fail saying ``what`` (and ``show()``: the state then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    seen = f"; state: {show()}" if show else ""
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}{seen}")


STANDIN_VALUES = Path(__file__).parent / "data" / "values.standin.yaml"


class ClusterStack:
    """A stand-in test stack on the cluster's manager (deployed by the deployer over SSH):
    llm-connector with ``replicas`` tasks, every other service at 0. Removed by ``cleanup``."""

    def __init__(self, cluster: dict[str, Any], tmp: Path, *, prefix: str = "cl",
                 replicas: int = 1, base_port: int = 21100,
                 extra: dict[str, Any] | None = None) -> None:
        import uuid

        import yaml

        self.cluster = cluster
        self.manager = cluster["nodes"][cluster["manager"]]
        self.name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        services: dict[str, Any] = {}
        names = ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image",
                 "mlflow-server"]
        for offset, name in enumerate(names):
            services[name] = {"published_port": base_port + offset,
                              "replicas": replicas if name == "llm-connector" else 0}
        services["minio"] = {"published_port": base_port + 5,
                             "published_console_port": base_port + 6}
        for name, over in (extra or {}).items():
            services.setdefault(name, {}).update(over)
        self.values = tmp / f"{self.name}.yaml"
        self.values.write_text(yaml.safe_dump({"stack": {"name": self.name},
                                               "services": services}))
        self.api = node_api(cluster, cluster["manager"])

    def argv(self, command: str, *extra: str, host: str | None = None) -> list[str]:
        return [command, "-f", str(STANDIN_VALUES), "-f", str(self.values),
                "--host", host or self.manager["alias"], "--ssh-config",
                self.cluster["ssh_config"], *extra]

    def service(self, short: str) -> str:
        return f"{self.name}_{short}"

    def running_tasks(self, short: str) -> dict[str, str]:
        """task id -> node hostname of the service's running tasks."""
        nodes = {n["ID"]: n["Description"]["Hostname"] for n in self.api.nodes()}
        tasks = self.api.tasks(filters={"service": self.service(short),
                                        "desired-state": "running"})
        return {t["ID"]: nodes.get(t["NodeID"], t["NodeID"]) for t in tasks
                if t["Status"]["State"] == "running"}

    def tasks_summary(self, short: str) -> list[tuple[str, str, str, str]]:
        """(node, desired state, state, error) of every task of a service (for failures)."""
        nodes = {n["ID"]: n["Description"]["Hostname"] for n in self.api.nodes()}
        return [(nodes.get(t.get("NodeID", ""), "-"), t["DesiredState"], t["Status"]["State"],
                 t["Status"].get("Err", "")) for t in self.api.tasks(
                     filters={"service": self.service(short)})]

    def cleanup(self) -> None:
        import shutil

        label = f"com.docker.stack.namespace={self.name}"
        for svc in self.api.services(filters={"label": label}):
            try:
                self.api.remove_service(svc["ID"])
            except docker.errors.APIError:
                pass
        wait_until(f"{self.name}'s tasks gone", lambda: not self.api.tasks(
            filters={"label": label, "desired-state": "running"}), timeout=60)
        for kind in ("secrets", "configs"):
            for obj in getattr(self.api, kind)(filters={"label": f"io.mlops.stack={self.name}"}):
                try:
                    getattr(self.api, f"remove_{kind[:-1]}")(obj["ID"])
                except docker.errors.APIError:
                    pass
        for net in self.api.networks(filters={"label": label}):
            try:
                self.api.remove_network(net["Id"])
            except docker.errors.APIError:
                pass
        shutil.rmtree(Path(self.manager["state_dir"]) / self.name, ignore_errors=True)
        self.api.close()
