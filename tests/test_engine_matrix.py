"""Shipping on every engine kind of the bed's matrix: Docker 20.10 (the namespace manager),
26.1 on the classic image store and 26.1 on the containerd image store (engine managers from
``scripts/testbed engines-up``), each reached over real SSH from the bed's local 20.10 engine.

One suite over the kinds, asserting bytes (the archive's, as sent over the SSH channel), never
time: a first ship sends only the layers the target lacks, a code-only change one small layer,
and afterwards the target holds the image whole (listed, same content, its every layer
exportable), so the push plan ships nothing for an unchanged or environment-only change."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from cluster_bed import FACTS, bed_command

from deployer import facts
from deployer.connectors import connect
from deployer.engine import objects
from deployer.engine.client import local_client
from deployer.inventory import adhoc_host
from deployer.operations import ImageRef
from deployer.output import Reporter
from deployer.shipping import Shipper
from deployer.shipping.estimate import Estimator
from deployer.shipping.registry import DIR_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
REGISTRY_DIR = REPO / ".testbed" / "ship-registry"
PREFIX = "dp-matrix"
KINDS = ("20.10", "26.1", "26.1-containerd")


@pytest.fixture(scope="session")
def engine_targets(bed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each kind's manager: ssh alias, ssh config, engine socket."""
    bed_command("engines-up")
    engines = json.loads(FACTS.read_text())["engines"]
    remote = bed["managers"]["remote"]
    targets = {"20.10": {"alias": remote["alias"], "ssh_config": bed["ssh_config"],
                         "docker_host": remote["docker_host"]}}
    for kind, manager in engines["managers"].items():
        targets[kind] = {"alias": manager["alias"], "ssh_config": engines["ssh_config"],
                         "docker_host": manager["docker_host"]}
    return targets


@pytest.fixture(autouse=True)
def registry_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(DIR_ENV, str(REGISTRY_DIR))
    return REGISTRY_DIR


@pytest.fixture
def made(engine_targets: dict[str, dict[str, Any]]) -> Iterator[list[str]]:
    """Refs a test makes: removed from the local engine and every target afterwards."""
    refs: list[str] = []
    yield refs
    hosts = ["unix:///var/run/docker.sock", *(t["docker_host"] for t in engine_targets.values())]
    for host in hosts:
        api = docker.APIClient(base_url=host, version="auto")
        for ref in refs:
            try:
                api.remove_image(ref)
            except docker.errors.APIError:
                pass


def build(tmp: Path, ref: str, base: str, files: dict[str, bytes]) -> str:
    """``base`` plus one layer of ``files`` (legacy builder: BuildKit would look the base up
    in a registry); returns the image ID."""
    ctx = tmp / f"ctx-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    lines = [f"FROM {base}"]
    for name, data in files.items():
        (ctx / name).write_bytes(data)
        lines.append(f"COPY {name} /opt/{name}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return str(docker.APIClient().inspect_image(ref)["Id"])


def ship(target: dict[str, Any], image_id: str, ref: str) -> tuple[Any, str]:
    host = adhoc_host(target["alias"], ssh_config=target["ssh_config"])
    local = local_client()
    stream = io.StringIO()
    try:
        with connect(host.ssh) as conn, Shipper(local, conn, Reporter(verbose=1,
                                                                      stream=stream)) as shipper:
            return shipper.ship(image_id, ref), stream.getvalue()
    finally:
        local.close()


@pytest.mark.parametrize("kind", KINDS)
def test_only_missing_layers_cross_the_wire_on_every_engine_kind(
    kind: str, engine_targets: dict[str, dict[str, Any]], tmp_path: Path, made: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = engine_targets[kind]
    if kind.endswith("-containerd"):
        # A cold local registry each run: the containerd route must size the target's layers
        # from a save first (then ship the change from the registry), whatever an earlier run
        # left in the shared index.
        monkeypatch.setenv(DIR_ENV, str(tmp_path / "registry"))
    there = docker.APIClient(base_url=target["docker_host"], version="auto")
    tag = uuid.uuid4().hex[:8]
    # First ship: the stand-in (which the target has) plus 3 MB of random bytes.
    first = f"{PREFIX}/app:{tag}-a"
    made.append(first)
    first_id = build(tmp_path, first, "mlops-standin:latest",
                     {"model.bin": os.urandom(3 * 1024 * 1024), "app.txt": b"v1"})
    # What --check predicts (uncompressed bytes the target lacks), on every store: the 3 MB.
    local_engine = local_client()
    target_engine = docker.DockerClient(base_url=target["docker_host"], version="auto")
    try:
        predicted, _ = Estimator(local_engine, target_engine, kind).estimate(first_id)
    finally:
        local_engine.close()
        target_engine.close()
    assert 3 * 1024 * 1024 <= predicted < 3.4 * 1024 * 1024, predicted
    report, log = ship(target, first_id, first)
    assert report.method == "layers", log
    assert 3 * 1024 * 1024 < report.bytes < 3.4 * 1024 * 1024, log
    # A code-only change: one small layer on top.
    second = f"{PREFIX}/app:{tag}-b"
    made.append(second)
    second_id = build(tmp_path, second, first, {"app.txt": b"v2"})
    report, log = ship(target, second_id, second)
    assert report.method == "layers", log
    assert report.bytes < 64 * 1024, log
    local = docker.APIClient(version="auto")
    for ref, image_id in ((first, first_id), (second, second_id)):
        # Whole on the target: the same content, and listed (the containerd store lists only
        # images whose every blob it holds).
        assert objects.identity_of(there.inspect_image(ref)).key == \
            objects.identity_of(local.inspect_image(image_id)).key
        assert there.images(filters={"reference": ref}), f"{ref} is not listed on {kind}"
    # The plan compares content, whatever ID the target's store gives the image: nothing to
    # ship for an unchanged or an environment-only change.
    key = objects.identity_of(local.inspect_image(second_id)).key
    wanted = ImageRef("app", second, second_id, key)
    engine = docker.DockerClient(base_url=target["docker_host"], version="auto")
    try:
        manager = facts.manager_facts(engine, kind, [wanted])
    finally:
        engine.close()
    assert key in manager.images and second in manager.image_tags


def test_the_containerd_target_exports_every_layer_of_a_shipped_image(
    engine_targets: dict[str, dict[str, Any]], tmp_path: Path, made: list[str]
) -> None:
    """An image loaded without the layers the target had still names each with its exact size:
    a ``docker save`` there writes the whole image (a wrong size gave a 7 kB archive)."""
    target = engine_targets["26.1-containerd"]
    ref = f"{PREFIX}/app:{uuid.uuid4().hex[:8]}-x"
    made.append(ref)
    image_id = build(tmp_path, ref, "mlops-standin:latest", {"app.txt": b"x"})
    report, log = ship(target, image_id, ref)
    assert report.bytes < 64 * 1024, log
    saved = subprocess.run(["docker", "-H", target["docker_host"], "save", ref],
                           capture_output=True, check=True).stdout
    local = subprocess.run(["docker", "save", ref], capture_output=True, check=True).stdout
    # Same layers, other archive layout: within 1 % of the local save's size.
    assert abs(len(saved) - len(local)) < len(local) / 100


@pytest.mark.parametrize(("local_kind", "target_kind"), [
    ("26.1", "20.10"), ("26.1", "26.1-containerd"),
    ("26.1-containerd", "20.10"), ("26.1-containerd", "26.1"),
])
def test_a_modern_deploying_engine_ships_only_missing_layers(
    local_kind: str, target_kind: str, engine_targets: dict[str, dict[str, Any]],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deploying machine on Docker 26.1, either store: its ``docker save`` is an OCI layout
    (layers as ``blobs/sha256/…``, compressed where the containerd store built them), filtered
    by digest. The engine managers stand in for it; two new layers and an empty registry dir
    send the image by a save (the registry route needs the local engine to reach the loopback
    registry, which a namespaced engine cannot)."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "registry"))
    local_host = engine_targets[local_kind]["docker_host"]
    target = engine_targets[target_kind]
    ref = f"{PREFIX}/local:{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM mlops-standin:latest\nCOPY lib.txt /opt/lib.txt\n"
                                    "COPY app.txt /opt/app.txt\n")
    (ctx / "lib.txt").write_text(f"lib {ref}")
    (ctx / "app.txt").write_text(ref)
    subprocess.run(["docker", "-H", local_host, "build", "-q", "-t", ref, str(ctx)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    local = local_client(local_host)
    there = docker.APIClient(base_url=target["docker_host"], version="auto")
    try:
        info = local.api.inspect_image(ref)
        host = adhoc_host(target["alias"], ssh_config=target["ssh_config"])
        stream = io.StringIO()
        with connect(host.ssh) as conn, Shipper(local, conn, Reporter(verbose=1,
                                                                      stream=stream)) as shipper:
            report = shipper.ship(str(info["Id"]), ref)
        log = stream.getvalue()
        assert report.method == "layers", log
        assert report.bytes < 64 * 1024, log
        assert objects.identity_of(there.inspect_image(ref)).key == \
            objects.identity_of(info).key
        assert there.images(filters={"reference": ref}), log
    finally:
        for api in (local.api, there):
            try:
                api.remove_image(ref)
            except docker.errors.APIError:
                pass
        local.close()
