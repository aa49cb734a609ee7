"""Image distribution to a cluster's workers: push's node shipping (deployer.shipping.nodes:
both workers at once through the manager as jump host, one local registry, only missing
layers) vs the serial baseline ``docker save IMAGES | ssh WORKER docker load``, one worker after
the other, side by side in one run on the bed's three-node cluster.

Two rounds: (a) a first distribution of ``--images`` synthetic service images the workers lack
(built on the stand-in image, which every node has: its layers are there already), (b) a
code-only change of one of them. Bytes on the wire are the workers' ``eth0`` rx counters (what
the two workers received, SSH framing included); time is wall clock. Each side gets its own
freshly built set (unique content). Cleans up its images on every engine.

    .venv/bin/python bench/bench_distribute.py [--images 3] [--scale 0.05]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_ship import OWN_MB, SERVICES, build, write_deps  # noqa: E402

from deployer.connectors import connect  # noqa: E402
from deployer.engine import objects  # noqa: E402
from deployer.engine.client import local_client  # noqa: E402
from deployer.inventory import adhoc_host  # noqa: E402
from deployer.output import Reporter  # noqa: E402
from deployer.shipping.nodes import NodeImages, NodeShipping, node_target  # noqa: E402
from deployer.shipping.registry import LocalRegistry  # noqa: E402
from deployer.swarm import read_nodes  # noqa: E402

FACTS = REPO / ".testbed" / "facts.json"
WORKERS = ("worker1", "worker2")


def rx(cluster: dict[str, Any]) -> int:
    total = 0
    for name in WORKERS:
        netns = cluster["nodes"][name]["netns"]
        out = subprocess.run(["ip", "-n", netns, "-s", "-j", "link", "show", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        total += int(json.loads(out)[0]["stats64"]["rx"]["bytes"])
    return total


def measure(cluster: dict[str, Any], func: Callable[[], None]) -> tuple[float, int]:
    before, started = rx(cluster), time.monotonic()
    func()
    return time.monotonic() - started, rx(cluster) - before


def make_set(tmp: Path, name: str, count: int, scale: float, version: int = 1) -> dict[str, str]:
    refs: dict[str, str] = {}
    for service in SERVICES[:count]:
        ctx = tmp / name / service
        if not (ctx / "deps").exists():
            write_deps(ctx / "deps", OWN_MB[service] * scale, f"{name}-{service}")
            (ctx / "app").mkdir(parents=True)
            (ctx / "Dockerfile").write_text(
                "FROM mlops-standin:latest\nCOPY deps /opt/deps\nCOPY app /opt/app\n")
        (ctx / "app" / "main.py").write_text(f"SERVICE = {service!r}\nVERSION = {version}\n")
        ref = f"dp-bench-dist/{name}-{service}:v{version}"
        refs[ref] = build(ctx, ref)
    return refs


class Ours:
    def __init__(self, cluster: dict[str, Any]) -> None:
        manager = adhoc_host(cluster["nodes"]["manager"]["alias"],
                             ssh_config=cluster["ssh_config"])
        assert manager.ssh is not None
        self.target = manager.ssh
        self.conn = connect(self.target)
        self.nodes = [n for n in read_nodes(self.conn.docker_client().api)
                      if n.hostname in {cluster["nodes"][w]["hostname"] for w in WORKERS}]
        self.local = local_client(timeout=600)

    def ship(self, images: dict[str, str]) -> None:
        registry = LocalRegistry()
        registry.start()
        try:
            shipping = NodeShipping(self.local, Reporter(stream=io.StringIO()), registry,
                                    lambda node: connect(node_target(self.target, node),
                                                         via=self.conn))
            local = {ref: objects.image_identity(self.local, image_id, "local")
                     for ref, image_id in images.items()}
            found = {ref: ident for ref, ident in local.items() if ident is not None}
            left = shipping.run([NodeImages(n, found) for n in self.nodes])
            if left:
                raise SystemExit(f"node shipping failed on {left}")
        finally:
            registry.stop()

    def close(self) -> None:
        self.local.close()
        self.conn.close()


def serial(cluster: dict[str, Any], refs: list[str]) -> None:
    for name in WORKERS:
        save = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
        load = subprocess.run(["ssh", "-F", cluster["ssh_config"],
                               cluster["nodes"][name]["alias"], "docker", "load", "-q"],
                              stdin=save.stdout, capture_output=True, text=True)
        assert save.stdout is not None
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise SystemExit(f"save | ssh load to {name} failed: {load.stderr}")


def cleanup(cluster: dict[str, Any], names: list[str]) -> None:
    hosts = ["unix:///var/run/docker.sock",
             *(n["docker_host"] for n in cluster["nodes"].values())]
    for host in hosts:
        api = docker.APIClient(base_url=host)
        for image in api.images():
            for tag in image.get("RepoTags") or ():
                if any(f"dp-bench-dist/{n}-" in tag for n in names):
                    try:
                        api.remove_image(tag, force=True)
                    except docker.errors.APIError:
                        pass
        api.close()


def line(name: str, ours: tuple[float, int], raw: tuple[float, int]) -> str:
    return (f"{name:<30} ours {ours[0]:7.2f} s {ours[1] / 1e6:9.3f} MB   serial save|load "
            f"{raw[0]:7.2f} s {raw[1] / 1e6:9.3f} MB   time {ours[0] / raw[0]:5.2f}x  "
            f"bytes {ours[1] / max(raw[1], 1):6.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3, help="images (default 3)")
    parser.add_argument("--scale", type=float, default=0.05,
                        help="own-layer size as a fraction of the real service's (default 0.05)")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(REPO / "scripts" / "testbed.py"), "cluster-up"],
                   check=True, capture_output=True)
    cluster = json.loads(FACTS.read_text())["cluster"]
    tag = uuid.uuid4().hex[:6]
    names = [f"ours-{tag}", f"raw-{tag}"]
    ours = Ours(cluster)
    try:
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            mine = make_set(tmp, names[0], args.images, args.scale)
            theirs = make_set(tmp, names[1], args.images, args.scale)
            first = (measure(cluster, lambda: ours.ship(mine)),
                     measure(cluster, lambda: serial(cluster, list(theirs))))
            print(line("(a) first distribution", *first))
            mine2 = make_set(tmp, names[0], 1, args.scale, version=2)
            theirs2 = make_set(tmp, names[1], 1, args.scale, version=2)
            change = (measure(cluster, lambda: ours.ship(mine2)),
                      measure(cluster, lambda: serial(cluster, list(theirs2))))
            print(line("(b) code-only change, 1 image", *change))
    finally:
        ours.close()
        cleanup(cluster, names)


if __name__ == "__main__":
    main()
