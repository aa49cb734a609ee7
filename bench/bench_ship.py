"""Layer-level shipping (deployer.shipping) vs ``docker save | ssh HOST docker load``, side by
side in one run, to one of the bed's managers: ``--target 20.10`` the namespace manager
(bed-remote, 10.250.0.2 over a veth link), ``26.1`` or ``26.1-containerd`` the engine managers
(``scripts/testbed engines-up``: Docker 26.1 on the classic or the containerd image store);
``--target all`` runs each in turn.

(a) first ship of six service images the target lacks. Target: <= 1.3x the time.
(b) a code-only change of one service (one file of its app, in the biggest image): that image
    only.
    Targets: <= 1 MB on the wire and <= 0.05x the save/load time.
(c) an environment-only change or a no-op: the push plan finds every image on the target by
    content (whatever ID its store gives it), so nothing ships: 0 image bytes.

Bytes on the wire are the namespace end's rx counter of the link (everything the manager
received: SSH framing and the Docker API included); time is wall clock. The six images are
synthetic stand-ins for the services, built on the bed's stand-in image: each adds a unique
"dependencies" layer (the real service's own size times ``--scale``; half random, half text:
it compresses like real packages) and a small "app" layer. Each side gets its own freshly built
set (unique content), so each first ship really moves new layers; the base layers are on the
target already (as on any manager that has run this project's images), which save/load cannot
know and sends again. The layer side's local registry starts empty in a temp dir: its first
session (a set of its own, reported as "cold") compresses every layer, base included; (a) is
then measured with the base layers in the registry, as after any earlier ship from this
machine. Cleans up its images on both engines and the temp registry.

    .venv/bin/python bench/bench_ship.py [--images 6] [--scale 0.1] [--rate MBIT]

The bed's link is a veth pair: memory speed, so both sides are CPU-bound on a shared machine
(the deploying side's gzip against save's plain tar). ``--rate 100`` shapes the link towards the
manager to 100 Mbit/s for the run (a token bucket on the host end, removed afterwards), the
uplink a team's manager is usually behind; then bytes, not CPU, decide.
    .venv/bin/python bench/bench_ship.py --images 2 --scale 0.001    # tiny (the test)
    .venv/bin/python bench/bench_ship.py --real    # (a) with the six real images instead

``--real``: (a) with the real service images scripts/up built (``mlops/<service>:latest``),
which bed-remote must not hold: save|load of all six in one stream first, then they are removed
from bed-remote again and ours ships them from an empty local registry (the very first ship
from a machine: every layer compressed), then once more with that registry warm (a new
manager, or a wiped one, reached from a machine that shipped before); then (b) at real size:
mlops/cnn-image plus one changed file of its app, each side its own. The images are removed
from bed-remote afterwards (and the two changed ones from the local engine).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deployer.connectors import connect  # noqa: E402
from deployer.engine.client import local_client  # noqa: E402
from deployer.inventory import adhoc_host  # noqa: E402
from deployer.output import Reporter  # noqa: E402
from deployer.shipping import Shipper  # noqa: E402

FACTS = REPO / ".testbed" / "facts.json"
KINDS = ("20.10", "26.1", "26.1-containerd")


class Target:
    """The manager shipped to: its ssh alias and config, engine socket, and link (namespace,
    the namespace end's interface, the host end's)."""

    def __init__(self, kind: str, facts: dict[str, Any]) -> None:
        self.kind = kind
        if kind == "20.10":
            manager = facts["managers"]["remote"]
            self.ssh_config = facts["ssh_config"]
            self.netns, self.ns_if, self.host_if = "mlopsbed", "mlb1", "mlb0"
        else:
            if "engines" not in facts:
                raise SystemExit("no engine managers: run scripts/testbed engines-up first")
            manager = facts["engines"]["managers"][kind]
            self.ssh_config = facts["engines"]["ssh_config"]
            self.netns, self.ns_if = manager["netns"], "eth0"
            self.host_if = ("mlcv-" + manager["netns"].removeprefix("mlc-"))[:15]
        self.alias = manager["alias"]
        self.docker_host = manager["docker_host"]


T: Target
#: Each service's own layers in MB (the real image's size minus the 271 MB base), as built here:
#: cnn-image 2.05 GB, mlflow-server 1.14 GB, sklearn-model 783 MB, minio 451 MB (measured);
#: gradio-frontend and llm-connector estimated. In the order shipped; scaled by --scale.
OWN_MB = {"cnn-image": 1780, "mlflow-server": 870, "sklearn-model": 512, "gradio-frontend": 600,
          "minio": 180, "llm-connector": 250}
SERVICES = tuple(OWN_MB)
WORDS = ("import", "def", "return", "class", "self", "value", "model", "tensor", "numpy",
         "async", "await", "lambda", "yield", "config", "request", "response")


def link_rx() -> int:
    out = subprocess.run(["ip", "-n", T.netns, "-s", "-j", "link", "show", T.ns_if],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


class Shaped:
    """The link towards the manager limited to ``mbit`` Mbit/s while in use (tc tbf)."""

    def __init__(self, mbit: float | None) -> None:
        self.mbit = mbit

    def __enter__(self) -> Shaped:
        if self.mbit is not None:
            subprocess.run(["tc", "qdisc", "replace", "dev", T.host_if, "root", "tbf", "rate",
                            f"{self.mbit}mbit", "burst", "256kb", "latency", "200ms"],
                           check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mbit is not None:
            subprocess.run(["tc", "qdisc", "del", "dev", T.host_if, "root"], check=False)


def write_deps(path: Path, megabytes: float, seed: str) -> None:
    """``megabytes`` of files, half random bytes and half source-like text."""
    rng = random.Random(seed)
    path.mkdir(parents=True)
    total = int(megabytes * 1_000_000)
    index = 0
    while total > 0:
        size = min(total, 1_000_000)
        half = size // 2
        text = " ".join(rng.choice(WORDS) for _ in range(half // 6)).encode()[:size - half]
        (path / f"mod{index:04d}.py").write_bytes(rng.randbytes(half) + text)
        total -= size
        index += 1


def build(ctx: Path, ref: str) -> str:
    # The legacy builder: BuildKit would look the stand-in up in a registry (none is reachable).
    proc = subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], capture_output=True,
                          text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if proc.returncode != 0:
        raise SystemExit(f"docker build {ref} failed:\n{proc.stderr}")
    return str(docker.APIClient().inspect_image(ref)["Id"])


def make_set(tmp: Path, name: str, count: int, scale: float) -> dict[str, str]:
    """Build ``count`` synthetic service images; returns ref -> image ID."""
    refs: dict[str, str] = {}
    for service in SERVICES[:count]:
        ctx = tmp / name / service
        write_deps(ctx / "deps", OWN_MB[service] * scale, f"{name}-{service}")
        (ctx / "app").mkdir(parents=True)
        (ctx / "app" / "main.py").write_text(f"SERVICE = {service!r}\nVERSION = 1\n")
        (ctx / "Dockerfile").write_text(
            "FROM mlops-standin:latest\nCOPY deps /opt/deps\nCOPY app /opt/app\n")
        ref = f"dp-bench-ship/{name}-{service}:v1"
        refs[ref] = build(ctx, ref)
    return refs


def code_change(tmp: Path, name: str, service: str) -> tuple[str, str]:
    ctx = tmp / name / service
    (ctx / "app" / "main.py").write_text(f"SERVICE = {service!r}\nVERSION = 2\n")
    ref = f"dp-bench-ship/{name}-{service}:v2"
    return ref, build(ctx, ref)


def measure(func: Any) -> tuple[float, int]:
    before, started = link_rx(), time.monotonic()
    func()
    return time.monotonic() - started, link_rx() - before


def measure_ours(side: LayerSide, images: dict[str, str]) -> tuple[float, int]:
    """Until every image is on the target (the registry fill after it reported apart)."""
    before, started = link_rx(), time.monotonic()
    side.ship(images)
    return side.shipped_at - started, link_rx() - before


class LayerSide:
    """Our side on one open SSH connection whose Docker API client is up, as in a push (which
    opened both to read the manager's facts before any image ships)."""

    def __init__(self, ssh_config: str, registry_dir: Path) -> None:
        self.conn = connect(adhoc_host(T.alias, ssh_config=ssh_config).ssh)
        self.conn.docker_client().version()
        self.local = local_client(timeout=600)
        self.registry_dir = registry_dir
        self.shipped_at = 0.0
        self.fill = 0.0

    def ship(self, images: dict[str, str]) -> None:
        shipper = Shipper(self.local, self.conn, Reporter(stream=io.StringIO()),
                          registry_dir=self.registry_dir)
        try:
            shipper.prepare((image_id, ref) for ref, image_id in images.items())
            for ref, image_id in images.items():
                report = shipper.ship(image_id, ref)
                if report.method != "layers":
                    raise SystemExit(f"layer shipping fell back: {report.reason}")
            self.shipped_at = time.monotonic()
        finally:
            # Images first shipped from a save are pushed into the local registry now (in a
            # push: while the stack converges); timed apart, as `fill`.
            shipper.close(wait=True)
        self.fill = time.monotonic() - self.shipped_at

    def close(self) -> None:
        self.local.close()
        self.conn.close()


def save_load(ssh_config: str, refs: list[str]) -> None:
    # The baseline exactly as a user types it: docker save ... | ssh HOST docker load
    save = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
    load = subprocess.run(["ssh", "-F", ssh_config, T.alias, "docker", "load", "-q"],
                          stdin=save.stdout, capture_output=True, text=True)
    assert save.stdout is not None
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise SystemExit(f"save | ssh load failed: {load.stderr}")


def cleanup(remote_host: str, names: list[str]) -> None:
    for host in ("unix:///var/run/docker.sock", remote_host):
        api = docker.APIClient(base_url=host)
        for image in api.images():
            for tag in image.get("RepoTags") or ():
                if any(f"dp-bench-ship/{n}-" in tag for n in names):
                    try:
                        api.remove_image(tag)
                    except docker.errors.APIError:
                        pass


def remove_from(host: str, image_ids: list[str]) -> None:
    api = docker.APIClient(base_url=host)
    try:
        for image_id in image_ids:
            try:
                api.remove_image(image_id, force=True)
            except docker.errors.ImageNotFound:
                pass
    finally:
        api.close()


def real_images() -> dict[str, str]:
    """ref -> image ID of the six real service images on the local engine."""
    api = docker.APIClient()
    try:
        refs = {}
        for service in SERVICES:
            ref = f"mlops/{service}:latest"
            try:
                refs[ref] = str(api.inspect_image(ref)["Id"])
            except docker.errors.ImageNotFound:
                raise SystemExit(f"{ref} is not built: run scripts/up first") from None
        return refs
    finally:
        api.close()


def real_main(ssh_config: str, remote: str, rate: float | None) -> None:
    images = real_images()
    # By name, not by ID: a containerd-store target names the same image otherwise.
    ids = list(images)
    api = docker.APIClient(base_url=remote)
    present = [ref for ref in ids if api.images(filters={"reference": ref})]
    api.close()
    if present:
        raise SystemExit(f"{T.alias} holds {len(present)} of these images already: remove "
                         "them (or the stack using them) first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ship-real-"))
    ours = LayerSide(ssh_config, tmp / "registry")
    children: list[str] = []
    try:
        with Shaped(rate):
            raw = measure(lambda: save_load(ssh_config, list(images)))
            remove_from(remote, ids)
            cold = measure_ours(ours, images)
            cold_fill = ours.fill
            remove_from(remote, ids)
            warm = measure_ours(ours, images)
            # (b) on the real biggest image, which bed-remote now holds: one file of its app.
            ours_ref, ours_id = real_change(tmp, "ours")
            raw_ref, raw_id = real_change(tmp, "raw")
            children = [ours_ref, raw_ref]
            change_ours = measure_ours(ours, {ours_ref: ours_id})
            change_raw = measure(lambda: save_load(ssh_config, [raw_ref]))
        print(f"real images: {', '.join(images)}; link "
              f"{f'{rate:g} Mbit/s' if rate else 'unshaped veth'}")
        print(line("(a) real six, cold registry", cold, raw, 1.3))
        print(f"    then pushed into the local registry in {cold_fill:.1f} s (in a push: while "
              "the stack converges)")
        print(line("(a) real six, warm registry", warm, raw, 1.3))
        print(line("(b) real code change (cnn)", change_ours, change_raw, 0.05, 1_000_000))
    finally:
        ours.close()
        remove_from(remote, ids + children)
        remove_from("unix:///var/run/docker.sock", children)
        shutil.rmtree(tmp, ignore_errors=True)


def real_change(tmp: Path, side: str) -> tuple[str, str]:
    """mlops/cnn-image plus one changed file of its app (unique per side)."""
    ctx = tmp / f"change-{side}"
    ctx.mkdir(parents=True)
    (ctx / "bench_change.py").write_text(f"CHANGE = {uuid.uuid4().hex!r}\n")
    (ctx / "Dockerfile").write_text(
        "FROM mlops/cnn-image:latest\nCOPY bench_change.py /srv/cnn_image/bench_change.py\n")
    ref = f"dp-bench-ship/real-{side}-cnn-image:v2"
    return ref, build(ctx, ref)


def no_op_line(images: dict[str, str]) -> str:
    """(c): the plan's view of a no-op or environment-only push: every image found on the
    target by content, so no ship-image step and 0 image bytes."""
    from deployer import facts as deployer_facts
    from deployer.engine import objects
    from deployer.operations import ImageRef

    local = docker.APIClient(version="auto")
    wanted = [ImageRef("x", ref, image_id, objects.identity_of(local.inspect_image(image_id)).key)
              for ref, image_id in images.items()]
    local.close()
    engine = docker.DockerClient(base_url=T.docker_host, version="auto")
    try:
        found = deployer_facts.manager_facts(engine, T.alias, wanted)
    finally:
        engine.close()
    lacking = [i.ref for i in wanted if i.key not in found.images]
    return (f"{'(c) env-only change / no-op':<28} {len(wanted) - len(lacking)} of {len(wanted)} "
            f"images found by content: {'0 image bytes (meets)' if not lacking else 'MISSES'}")


def line(name: str, ours: tuple[float, int], raw: tuple[float, int], target: float,
         max_bytes: int | None = None) -> str:
    ratio = ours[0] / raw[0]
    good = ratio <= target and (max_bytes is None or ours[1] <= max_bytes)
    limit = f", <= {max_bytes / 1e6:g} MB" if max_bytes is not None else ""
    return (f"{name:<28} layers {ours[0]:7.2f} s {ours[1] / 1e6:9.3f} MB   "
            f"save|load {raw[0]:7.2f} s {raw[1] / 1e6:9.3f} MB   ratio {ratio:5.2f}x  "
            f"(target <= {target}x{limit}: {'meets' if good else 'MISSES'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6, choices=range(1, 7),
                        help="how many service images (default 6)")
    parser.add_argument("--scale", type=float, default=0.1,
                        help="each image's own layer as a fraction of the real service's "
                        "(default 0.1: 18-178 MB)")
    parser.add_argument("--rate", type=float, default=None, metavar="MBIT",
                        help="shape the link towards the manager to MBIT Mbit/s for the run")
    parser.add_argument("--real", action="store_true",
                        help="(a) with the six real service images (see above)")
    parser.add_argument("--target", choices=(*KINDS, "all"), default="20.10",
                        help="the manager's engine kind (default 20.10: bed-remote)")
    args = parser.parse_args()
    facts = json.loads(FACTS.read_text())
    for kind in KINDS if args.target == "all" else (args.target,):
        global T
        T = Target(kind, facts)
        print(f"== target: Docker {kind} ({T.alias})")
        run_target(args, T.ssh_config, T.docker_host)


def run_target(args: argparse.Namespace, ssh_config: str, remote: str) -> None:
    if args.real:
        real_main(ssh_config, remote, args.rate)
        return
    run = uuid.uuid4().hex[:6]
    ours_name, raw_name, cold_name = f"l{run}", f"s{run}", f"c{run}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-ship-"))
    registry_dir = tmp / "registry"
    ours = LayerSide(ssh_config, registry_dir)
    try:
        cold_set = make_set(tmp, cold_name, args.images, args.scale)
        warm_set = make_set(tmp, ours_name, args.images, args.scale)
        raw_set = make_set(tmp, raw_name, args.images, args.scale)
        own = sum(OWN_MB[svc] * args.scale for svc in SERVICES[:args.images])
        link = f"{args.rate:g} Mbit/s" if args.rate else "unshaped veth"
        print(f"run {run}: {args.images} images on the stand-in base (271 MB), "
              f"{own:.0f} MB of own layers per set (scale {args.scale:g}), link {link}")
        service = SERVICES[0]  # the biggest image: the one a user waits for
        with Shaped(args.rate):
            cold = measure_ours(ours, cold_set)
            cold_fill = ours.fill
            # The local registry now holds the base layers, as after any earlier ship.
            first_ours = measure_ours(ours, warm_set)
            first_fill = ours.fill
            first_raw = measure(lambda: save_load(ssh_config, list(raw_set)))
            ours_ref, ours_id = code_change(tmp, ours_name, service)
            raw_ref, _ = code_change(tmp, raw_name, service)
            change_ours = measure_ours(ours, {ours_ref: ours_id})
            change_raw = measure(lambda: save_load(ssh_config, [raw_ref]))
        print(line("(a) first ship", first_ours, first_raw, 1.3))
        print(line("(a) ... cold local registry", cold, first_raw, 1.3))
        print(f"    registry fill after (a): {first_fill:.1f} s, after the cold one "
              f"{cold_fill:.1f} s (in a push: while the stack converges)")
        print(line(f"(b) code change ({service})", change_ours, change_raw, 0.05, 1_000_000))
        print(no_op_line({**warm_set, ours_ref: ours_id}))
    finally:
        ours.close()
        cleanup(remote, [ours_name, raw_name, cold_name])
        shutil.rmtree(tmp, ignore_errors=True)
        leftover = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                    and str(registry_dir).encode() in _cmdline(p)]
        if leftover:
            print(f"registry processes left: {[p.name for p in leftover]}", file=sys.stderr)
            raise SystemExit(1)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


if __name__ == "__main__":
    main()
