"""`deployer push` vs the raw docker CLI, over ONE SSH connection to the bed's loopback manager.

(a) no-op push (nothing changed: one remote read, no deploy) vs a raw `docker stack deploy` of the
    same file (which still bumps every service). Target: <= 0.3x.
(b) first deploy until converged (push: secrets, configs, upload, deploy, wait) vs a raw
    `docker stack deploy` of the same rendered file + polling the services until N/N (the same
    read model and poll interval as the deployer). Target: <= 1.15x.

Runs alternate side by side in one process and one SSH connection; medians are printed as ratios
(never asserted). Uses a small stand-in stack `dp-bench-<id>` on host ports 20900-20906 and
removes it (services, secrets, configs, state) at the end.

    .venv/bin/python bench/bench_push.py [--rounds 5] [--deploy-rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deployer.connectors import connect  # noqa: E402
from deployer.connectors.base import Connector  # noqa: E402
from deployer.converge import wait_converged  # noqa: E402
from deployer.engine.client import docker_errors, local_engine  # noqa: E402
from deployer.inventory import adhoc_host  # noqa: E402
from deployer.operations import SECRET_STACK_LABEL, deploy_argv  # noqa: E402
from deployer.output import Reporter  # noqa: E402
from deployer.push import Pusher  # noqa: E402
from deployer.push_inputs import PushOptions  # noqa: E402
from deployer.state import read_state  # noqa: E402
from deployer.values import StackValues, load_values  # noqa: E402

FACTS = REPO / ".testbed" / "facts.json"
STANDIN_VALUES = REPO / "tests" / "data" / "values.standin.yaml"
BASE_PORT = 20900
#: The deployer's converge poll interval, used for the raw baseline too.
POLL = 0.5
RUNNING = ("llm-connector", "sklearn-model", "minio")


def overlay(stack: str, tmp: Path) -> Path:
    """Three running stand-in services and the bucket-init job; the rest scaled to 0."""
    services: dict[str, Any] = {}
    names = ["gradio-frontend", "llm-connector", "sklearn-model", "cnn-image", "mlflow-server"]
    for offset, name in enumerate(names):
        services[name] = {"published_port": BASE_PORT + offset}
        if name not in RUNNING:
            services[name]["replicas"] = 0
    services["minio"] = {"published_port": BASE_PORT + 5,
                         "published_console_port": BASE_PORT + 6}
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump({"stack": {"name": stack}, "services": services}))
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Bench:
    def __init__(self, conn: Connector, values_files: list[Path], stack: str) -> None:
        self.conn = conn
        self.files = values_files
        self.stack = stack
        self.api = conn.docker_client().api
        self.local = local_engine(conn)
        self.log = io.StringIO()

    def values(self) -> StackValues:
        return load_values(self.files, [])

    # -- the two sides -------------------------------------------------------------------------

    def push(self) -> bool:
        """What `deployer push` does in-process (values loaded from the files each time);
        True if it changed something."""
        plan = Pusher(self.conn, Reporter(stream=self.log), PushOptions(timeout=180),
                      local=self.local).push(self.values())
        return plan.changed

    def raw_deploy(self, path: str) -> None:
        self.conn.run(deploy_argv(self.stack, path))

    def raw_deploy_and_poll(self, path: str, expected: list[str]) -> None:
        self.raw_deploy(path)
        wait_converged(self.api, self.stack, self.conn.host, expected=expected, timeout=180,
                       interval=POLL)

    # -- housekeeping --------------------------------------------------------------------------

    def deployed_file(self) -> tuple[str, str]:
        """The current revision's stack file on the manager: (path, text)."""
        state = read_state(self.conn, self.stack, with_services=False)
        assert state.current is not None, self.log.getvalue()
        path = f"{state.revision_dir(state.current)}/stack.yml"
        data = self.conn.get_file(path)
        assert data is not None
        return path, data.decode()

    def remove_stack(self, *, objects: bool) -> None:
        """`docker stack rm`, wait until its tasks and network are gone; the deployer's state
        (and with ``objects``, the secrets and configs) too, so the next push is a first one."""
        self.conn.run(["docker", "stack", "rm", self.stack], check=False)
        label = f"com.docker.stack.namespace={self.stack}"
        deadline = time.monotonic() + 60
        with docker_errors(self.conn.host):
            while time.monotonic() < deadline:
                busy = (self.api.containers(filters={"label": label})
                        or self.api.networks(filters={"label": label}))
                if not busy:
                    break
                time.sleep(0.3)
            # Swarm leaves the exited containers of a completed job behind.
            for container in self.api.containers(all=True, filters={"label": label}):
                _quietly(self.api.remove_container, container["Id"], force=True)
            if objects:
                mine = {"label": f"{SECRET_STACK_LABEL}={self.stack}"}
                for secret in self.api.secrets(filters=mine):
                    _quietly(self.api.remove_secret, secret["ID"])
                for config in self.api.configs(filters=mine):
                    _quietly(self.api.remove_config, config["ID"])
        state = read_state(self.conn, self.stack, with_services=False)
        self.conn.run(["rm", "-rf", "--", state.stack_dir])


def _quietly(remove: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Remove, ignoring objects Swarm removed meanwhile."""
    try:
        remove(*args, **kwargs)
    except docker.errors.NotFound:
        pass


def ratio_line(name: str, ours: list[float], raw: list[float], target: float) -> str:
    a, b = statistics.median(ours), statistics.median(raw)
    verdict = "meets" if a / b <= target else "MISSES"
    return (f"{name:<34} push {a * 1000:8.0f} ms   raw {b * 1000:8.0f} ms   "
            f"ratio {a / b:5.2f}x  (target <= {target}x: {verdict})")


def tag_on_every_node(cluster: dict[str, Any], image: str) -> None:
    """Push ships images to the manager only (for now): tag the bed's copy on every node as
    push references it (``repo:<id[:12]>``), so tasks placed on workers find it."""
    for node in cluster["nodes"].values():
        api = docker.APIClient(base_url=node["docker_host"], version="auto")
        try:
            image_id = api.inspect_image(image)["Id"]
            api.tag(image, image.rsplit(":", 1)[0], image_id.split(":", 1)[1][:12])
        finally:
            api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of (a) per side")
    parser.add_argument("--deploy-rounds", type=int, default=3, help="runs of (b) per side")
    parser.add_argument("--cluster", action="store_true",
                        help="on the bed's three-node cluster (scripts/testbed cluster-up) "
                        "instead of the loopback manager")
    args = parser.parse_args()
    facts = json.loads(FACTS.read_text())
    os.environ.setdefault("GOOGLE_API_KEY", "bench-" + uuid.uuid4().hex)
    stack = f"dp-bench-{uuid.uuid4().hex[:6]}"
    host = adhoc_host(facts["managers"]["loopback"]["alias"], ssh_config=facts["ssh_config"])
    if args.cluster:
        cluster = facts["cluster"]
        host = adhoc_host(cluster["nodes"][cluster["manager"]]["alias"],
                          ssh_config=cluster["ssh_config"])
        tag_on_every_node(cluster, facts["standin_image"])
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp, connect(host.ssh) as conn:
        bench = Bench(conn, [STANDIN_VALUES, overlay(stack, Path(tmp))], stack)
        expected = [*bench.values().active_services(), *bench.values().jobs.by_name()]
        try:
            # (b) first deploy to converged, alternating push / raw.
            push_first: list[float] = []
            raw_first: list[float] = []
            for _ in range(args.deploy_rounds):
                push_first.append(timed(bench.push))
                _, text = bench.deployed_file()
                bench.remove_stack(objects=False)  # the raw side reuses secrets and configs
                raw_path = f"{read_state(conn, stack).stack_dir}/bench-raw.yml"
                conn.put_file(text.encode(), raw_path)
                raw_first.append(timed(partial(bench.raw_deploy_and_poll, raw_path, expected)))
                bench.remove_stack(objects=True)
            # (a) no-op push vs raw deploy of the same file, on a deployed stack.
            bench.push()
            path, _ = bench.deployed_file()
            noop: list[float] = []
            raw: list[float] = []
            bench.push()  # warm: the first no-op may record the inputs hash
            for _ in range(args.rounds):
                start = time.perf_counter()
                changed = bench.push()
                noop.append(time.perf_counter() - start)
                assert not changed, "the no-op push changed something"
                raw.append(timed(lambda: bench.raw_deploy(path)))
        finally:
            bench.remove_stack(objects=True)
    print(f"stack {stack}: {len(expected)} services/jobs ({len(RUNNING)} running + a job), "
          f"over one SSH connection to {host.label}")
    print(ratio_line("(a) no-op push vs stack deploy", noop, raw, 0.3))
    print(ratio_line("(b) first deploy to converged", push_first, raw_first, 1.15))


if __name__ == "__main__":
    main()
