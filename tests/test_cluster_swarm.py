"""The deployer on the three-node cluster (real Swarm: one manager, two workers): placement with
at most one task per node, drain, a worker's engine going away and coming back, nodes listed,
and placements that cannot work failing fast with the reason and the usual rollback.

One stand-in stack for the module (pushed once); the tests run in file order and each leaves
the stack converged with its 3 llm-connector replicas, one per node (a test that changes it
puts it back in a finally).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_bed import (  # noqa: F401 - cluster: the fixture
    STANDIN_VALUES,
    ClusterStack,
    bed_command,
    cluster,
    node_api,
    wait_until,
)

from deployer.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Host-mode ports on every node: a run's own range, so a second run at the same time (another
# engineer's) does not find them taken.
BASE_PORT = 21700 + 10 * secrets.randbelow(40)
LLM_PORT = BASE_PORT + 1
NODES = {"mlc-manager", "mlc-worker1", "mlc-worker2"}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def stack(cluster: dict[str, Any],  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    before = os.environ.get("GOOGLE_API_KEY")
    os.environ["GOOGLE_API_KEY"] = "cl-test-key"
    placed = ClusterStack(
        cluster, tmp_path_factory.mktemp("cluster"), prefix="cl", replicas=3,
        base_port=BASE_PORT,
        extra={"llm-connector": {"placement": {"max_replicas_per_node": 1}}},
    )
    try:
        assert main(placed.argv("push", "--timeout", "180")) == 0
        yield placed
    finally:
        placed.cleanup()
        if before is None:
            os.environ.pop("GOOGLE_API_KEY", None)
        else:
            os.environ["GOOGLE_API_KEY"] = before


def _one_per_node(stack: ClusterStack) -> bool:
    placed = sorted(stack.running_tasks("llm-connector").values())
    return placed == sorted(NODES)


def test_three_replicas_one_per_node(stack: ClusterStack,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _one_per_node(stack), stack.running_tasks("llm-connector")
    # Host-mode ports: each node answers for its own task, on its own address.
    for node in stack.cluster["nodes"].values():
        with urllib.request.urlopen(f"http://{node['host']}:{LLM_PORT}/health",
                                    timeout=5) as resp:
            assert resp.status == 200
    code, out = run(["nodes", *stack.argv("ls")[1:]], capsys)
    assert code == 0, out
    rows = {line.split()[0].rstrip("*"): line.split() for line in out.splitlines()
            if line.startswith("mlc-")}
    assert set(rows) == NODES
    assert rows["mlc-manager"][1:4] == ["*", "manager", "active"]
    for name in ("mlc-worker1", "mlc-worker2"):
        role, availability, state, engine, address, tasks = rows[name][1:7]
        assert (role, availability, state) == ("worker", "active", "ready")
        # The cluster's engines are mixed (as during an upgrade): the bed says which is where.
        kind = next(n["kind"] for n in stack.cluster["nodes"].values() if n["hostname"] == name)
        assert engine.startswith(kind.split("-")[0]) and address.startswith("10.251.0.")
        assert int(tasks) >= 1  # this stack's task (others' too, if any)


def test_drain_moves_tasks_and_the_stack_stays_converged(
    stack: ClusterStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # One node per task at most, three nodes: to drain one, the stack must need only two.
    code, out = run(stack.argv("scale", "llm-connector=2"), capsys)
    assert code == 0, out
    worker = next(n for n in stack.running_tasks("llm-connector").values()
                  if n != "mlc-manager")
    try:
        code, out = run(["nodes", "drain", worker, *stack.argv("x")[1:]], capsys)
        assert code == 0, out
        assert f"changed: [{stack.manager['alias']}" in out and f"drain {worker}" in out
        placed = stack.running_tasks("llm-connector")
        # Drain waited: the task moved to the free node, the stack converged again.
        assert len(placed) == 2 and worker not in placed.values()
        code, out = run(stack.argv("status"), capsys)
        assert code == 0 and "2/2" in out and "nodes: 3/3 ready, " + worker + " drain" in out
        code, out = run(["nodes", "drain", worker, *stack.argv("x")[1:]], capsys)
        assert code == 0 and f"ok: [{stack.manager['alias']}" in out  # already drained
        audit = subprocess.run(
            ["cat", f"{stack.manager['state_dir']}/{stack.name}/audit.log"],
            capture_output=True, text=True).stdout
        assert '"node-drain"' in audit or "node-drain" in audit
    finally:
        assert main(["nodes", "activate", worker, *stack.argv("x")[1:]]) == 0
        assert main(stack.argv("scale", "llm-connector=3")) == 0
    wait_until("one task per node again", lambda: _one_per_node(stack),
               show=lambda: stack.tasks_summary("llm-connector"))


def test_worker_engine_down_reschedules_and_comes_back(
    stack: ClusterStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(stack.argv("scale", "llm-connector=2")) == 0
    capsys.readouterr()
    placed = stack.running_tasks("llm-connector")
    worker = next(n for n in placed.values() if n != "mlc-manager")
    short = worker.removeprefix("mlc-")
    other = next(n for n in NODES - {worker} if n not in placed.values())
    bed_command("cluster-node", "stop", short)
    try:
        wait_until(f"{worker} down and its task on {other}", lambda: (
            sorted(stack.running_tasks("llm-connector").values())
            == sorted(set(placed.values()) - {worker} | {other})), timeout=90)
        code, out = run(stack.argv("status"), capsys)
        assert code == 0, out
        assert "nodes: 2/3 ready" in out and f"node {worker} is DOWN" in out, out
        assert "2/2" in out, out
        # The service published on another node still answers.
        address = next(n["host"] for n in stack.cluster["nodes"].values()
                       if n["hostname"] == other)
        with urllib.request.urlopen(f"http://{address}:{LLM_PORT}/", timeout=5) as resp:
            assert json.loads(resp.read())["service"] == "llm-connector"
    finally:
        bed_command("cluster-node", "start", short)
    wait_until(f"{worker} ready again", lambda: "nodes: 3/3 ready" in _status(stack, capsys),
               timeout=90)
    assert main(stack.argv("scale", "llm-connector=3")) == 0
    wait_until("one task per node again", lambda: _one_per_node(stack),
               show=lambda: stack.tasks_summary("llm-connector"))


def _status(stack: ClusterStack, capsys: pytest.CaptureFixture[str]) -> str:
    _, out = run(stack.argv("status"), capsys)
    return out


def test_unsatisfiable_constraint_fails_fast_and_rolls_back(
    stack: ClusterStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(stack.argv(
        "push", "--timeout", "300",
        "--set", 'services.llm-connector.placement.constraints=["node.labels.nowhere == true"]',
    ), capsys)
    assert code != 0, out
    assert "llm-connector: a task found no node to run on" in out, out
    assert "no suitable node" in out and "scheduling constraints" in out
    assert "changed: [" in out and "rollback" in out  # back to the revision before
    wait_until("the previous placement back", lambda: _one_per_node(stack),
               show=lambda: stack.tasks_summary("llm-connector"))


@pytest.fixture
def untagged_on_worker(stack: ClusterStack) -> Iterator[tuple[str, str]]:
    """The service's image reference removed from one worker (the image itself stays: its
    running container uses it): what a node that never got the image looks like to Swarm.
    Put back afterwards. Yields (worker hostname, image reference)."""
    service = stack.api.inspect_service(stack.service("llm-connector"))
    ref = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    api = node_api(stack.cluster, "worker1")
    image_id = api.inspect_image(ref)["Id"]
    api.remove_image(ref)  # untag only: other tags and the running container keep the image
    try:
        yield stack.cluster["nodes"]["worker1"]["hostname"], ref
    finally:
        repo, tag = ref.rsplit(":", 1)
        api.tag(image_id, repo, tag)
        api.close()


def test_worker_without_the_image_rejects_with_the_node_named(
    stack: ClusterStack, untagged_on_worker: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker, ref = untagged_on_worker
    # A restart replaces every task: the one placed on the worker cannot start there.
    code, out = run(stack.argv("restart", "llm-connector", "--timeout", "300"), capsys)
    assert code != 0, out
    # Swarm's own update rollback may be what stops it first; either way the error names the
    # worker that lacks the image and what it said.
    assert f"task error on node {worker}" in out and f"No such image: {ref}" in out, out
    assert f"node {worker} lacks the image" in out, out


def test_back_to_one_task_per_node_once_the_image_is_back(stack: ClusterStack) -> None:
    # (after the fixture above put the image back) Swarm retries the rejected slot.
    wait_until("one task per node again", lambda: _one_per_node(stack), timeout=180,
               show=lambda: stack.tasks_summary("llm-connector"))


def test_node_labels_from_the_inventory_steer_placement(
    stack: ClusterStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  {stack.manager['alias']}:\n"
        "    values: {swarm: {node_labels: {mlc-worker2: {cltest.zone: b}}}}\n")
    target = ["-i", str(inventory), "--ssh-config", stack.cluster["ssh_config"],
              "-f", str(STANDIN_VALUES), "-f", str(stack.values)]
    manager = node_api(stack.cluster, "manager")

    def drop_label() -> None:
        for node in manager.nodes():
            spec = node["Spec"]
            if "cltest.zone" in (spec.get("Labels") or {}):
                del spec["Labels"]["cltest.zone"]
                manager.update_node(node["ID"], node["Version"]["Index"], spec)

    drop_label()  # a run stopped half-way may have left it
    try:
        code, out = run(["nodes", "label", "--from-values", *target], capsys)
        assert code == 0 and "changed: [" in out and "cltest.zone=b" in out, out
        code, out = run(["nodes", "label", "--from-values", *target], capsys)
        assert code == 0 and "ok: [" in out, out  # idempotent
        code, out = run(["push", *target, "--timeout", "120",
                         "--set", "services.sklearn-model.replicas=1", "--set",
                         'services.sklearn-model.placement.constraints=["node.labels.cltest.zone'
                         ' == b"]'], capsys)
        assert code == 0, out
        assert list(stack.running_tasks("sklearn-model").values()) == ["mlc-worker2"]
    finally:
        drop_label()
        manager.close()
        assert main(stack.argv("push", "--timeout", "120")) == 0
