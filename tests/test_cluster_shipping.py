"""Images on every node (the three-node cluster): push gives each worker that may run a task
the images it lacks, through the manager as its SSH jump host, only the missing layers; a
second push finds them there and ships nothing; placement decides which nodes get what.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from cluster_bed import ClusterStack, cluster, node_api, wait_until  # noqa: F401

from deployer.cli import main
from deployer.engine.objects import identity_of
from deployer.shipping.registry import DIR_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKERS = ("mlc-worker1", "mlc-worker2")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def build_image(bed: dict[str, Any], base: str) -> tuple[str, str]:
    """``base`` plus one small layer, on the deploying machine only: (ref, image id)."""
    ref = f"mlops-clship:{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    proc = subprocess.run(
        ["docker", "-H", bed["docker_host"], "build", "-q", "-t", ref, "-"],
        input=f"FROM {base}\nRUN echo {marker} > /clship-marker-{marker[:6]}\n", text=True,
        capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert proc.returncode == 0, proc.stderr
    local = docker.APIClient(base_url=bed["docker_host"], version="auto")
    try:
        return ref, str(local.inspect_image(ref)["Id"])
    finally:
        local.close()


@pytest.fixture
def images(bed: dict[str, Any],
           cluster: dict[str, Any]) -> Iterator[list[tuple[str, str]]]:  # noqa: F811
    """Images a test built (``build_image``), removed from every engine afterwards, newest
    first (a child before its parent)."""
    built: list[tuple[str, str]] = []
    yield built
    local = docker.APIClient(base_url=bed["docker_host"], version="auto")
    for ref, image_id in reversed(built):
        for name in cluster["nodes"]:
            api = node_api(cluster, name)
            for name_or_id in (ref, image_id):  # a containerd-store node knows it by name
                try:
                    api.remove_image(name_or_id, force=True)
                except docker.errors.APIError:
                    pass
            api.close()
        try:
            local.remove_image(ref, force=True)
        except docker.errors.APIError:
            pass
    local.close()


@pytest.fixture
def new_image(bed: dict[str, Any], images: list[tuple[str, str]]) -> str:
    """An image only the deploying machine has: the stand-in plus one small layer."""
    images.append(build_image(bed, bed["standin_image"]))
    return images[-1][0]


@pytest.fixture
def stack(cluster: dict[str, Any],  # noqa: F811
          tmp_path: Any) -> Iterator[ClusterStack]:
    before = os.environ.get("GOOGLE_API_KEY")
    os.environ["GOOGLE_API_KEY"] = "clship-key"
    placed = ClusterStack(cluster, tmp_path, prefix="cs", replicas=3, base_port=21500,
                          extra={"llm-connector": {"placement": {"max_replicas_per_node": 1}}})
    try:
        yield placed
    finally:
        placed.cleanup()
        if before is None:
            os.environ.pop("GOOGLE_API_KEY", None)
        else:
            os.environ["GOOGLE_API_KEY"] = before


@pytest.fixture(scope="module")
def cold_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ship-registry")


@pytest.fixture(autouse=True)
def registry_dir(cold_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local registry that starts empty each run (its layer index too): what the nodes of
    each store get does not depend on what an earlier run left there."""
    monkeypatch.setenv(DIR_ENV, str(cold_registry))
    return cold_registry


def image_on(cluster: dict[str, Any], node: str, ref: str) -> str | None:  # noqa: F811
    """The content key of image ``ref`` on ``node`` (the nodes' engines differ: an image's ID
    is store-defined, its content is not)."""
    api = node_api(cluster, node)
    try:
        return identity_of(api.inspect_image(ref)).key
    except docker.errors.ImageNotFound:
        return None
    finally:
        api.close()


def local_key(bed: dict[str, Any], ref: str) -> str:
    local = docker.APIClient(base_url=bed["docker_host"], version="auto")
    try:
        return identity_of(local.inspect_image(ref)).key
    finally:
        local.close()


def test_workers_lacking_the_image_get_it_and_a_second_push_ships_nothing(
    stack: ClusterStack, images: list[tuple[str, str]], bed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster_facts = stack.cluster
    names = {n["hostname"]: short for short, n in cluster_facts["nodes"].items()}

    def pinned(image_id: str) -> str:  # as push references it
        return f"mlops-clship:{image_id.removeprefix('sha256:')[:12]}"

    # A project base image no node has: the first push moves all of its layers (the bed's
    # stand-in layers too: an engine knows a layer it got by `docker load` only by content,
    # not by its registry digest, so the first pull fetches those once more).
    images.append(build_image(bed, bed["standin_image"]))
    base, base_id = images[-1]
    assert all(image_on(cluster_facts, names[w], base) is None for w in WORKERS)
    code, out = run(stack.argv("push", "--timeout", "240", "--set",
                               f"services.llm-connector.image={base}"), capsys)
    assert code == 0, out
    for worker in WORKERS:  # 1 of 3 if an earlier test's pull already fetched the stand-in
        assert f"changed: [{worker}] ship-image {pinned(base_id)}  (" in out, out
    # A code change on top: only the one new layer moves, to each worker through the manager.
    images.append(build_image(bed, base))
    new_image, image_id = images[-1]
    code, out = run(stack.argv("push", "--timeout", "240", "--set",
                               f"services.llm-connector.image={new_image}"), capsys)
    assert code == 0, out
    for worker in WORKERS:
        moved = f"changed: [{worker}] ship-image {pinned(image_id)}  (1 of 4 layers sent"
        assert moved in out, out
        assert image_on(cluster_facts, names[worker], pinned(image_id)) == \
            local_key(bed, image_id)
    running = stack.running_tasks("llm-connector")
    assert sorted(running.values()) == sorted(["mlc-manager", *WORKERS]), running
    # A forced redeploy: every node has it, nothing ships.
    code, out = run(stack.argv("push", "--force", "--timeout", "240", "--set",
                               f"services.llm-connector.image={new_image}"), capsys)
    assert code == 0, out
    assert "ship-image" not in out.replace("ship-images", ""), out
    for worker in WORKERS:
        assert f"ok: [{worker}] ship-images" in out, out


def test_placement_decides_which_nodes_get_the_image(
    stack: ClusterStack, new_image: str, bed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster_facts = stack.cluster
    names = {n["hostname"]: short for short, n in cluster_facts["nodes"].items()}
    key = local_key(bed, new_image)
    code, out = run(stack.argv(
        "push", "--timeout", "240",
        "--set", f"services.llm-connector.image={new_image}",
        "--set", "services.llm-connector.replicas=1",
        "--set", 'services.llm-connector.placement.constraints=["node.hostname == mlc-worker2"]',
    ), capsys)
    assert code == 0, out
    ref = next(line.split()[3] for line in out.splitlines()
               if line.startswith("changed: [mlc-worker2] ship-image "))
    assert image_on(cluster_facts, names["mlc-worker2"], ref) == key
    assert image_on(cluster_facts, names["mlc-worker1"], ref) is None, out
    assert list(stack.running_tasks("llm-connector").values()) == ["mlc-worker2"]


def test_push_gives_the_nodes_the_values_labels_before_placing(
    stack: ClusterStack, capsys: pytest.CaptureFixture[str],
) -> None:
    label = f"clship{uuid.uuid4().hex[:6]}"
    manager = node_api(stack.cluster, "manager")

    def node_labels() -> dict[str, dict[str, str]]:
        return {n["Description"]["Hostname"]: dict(n["Spec"].get("Labels") or {})
                for n in manager.nodes()}

    try:
        code, out = run(stack.argv(
            "push", "--timeout", "240",
            "--set", f"swarm.node_labels={{mlc-worker1: {{{label}: 'zone-b'}}}}",
            "--set", "services.llm-connector.replicas=1",
            "--set",
            f'services.llm-connector.placement.constraints=["node.labels.{label} == zone-b"]',
        ), capsys)
        assert code == 0, out
        assert node_labels()["mlc-worker1"].get(label) == "zone-b"
        assert list(stack.running_tasks("llm-connector").values()) == ["mlc-worker1"]
    finally:
        for node in manager.nodes():
            spec = node["Spec"]
            if label in (spec.get("Labels") or {}):
                del spec["Labels"][label]
                manager.update_node(node["ID"], node["Version"]["Index"], spec)
        manager.close()
