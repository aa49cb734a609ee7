"""The node read model and the node plans, pure: Engine API JSON in, NodeState / argv out."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.actions.nodes import (
    node_of,
    plan_availability,
    plan_labels,
    plan_node_labels,
)
from deployer.commands.nodes import parse_labels
from deployer.errors import ConfigError
from deployer.swarm import parse_nodes, parse_snapshot


def _node(node_id: str, hostname: str, *, role: str = "worker", state: str = "ready",
          availability: str = "active", labels: dict[str, str] | None = None,
          leader: bool = False, addr: str = "10.0.0.9", message: str = "") -> dict[str, Any]:
    raw: dict[str, Any] = {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Description": {"Hostname": hostname, "Engine": {"EngineVersion": "20.10.24"}},
        "Status": {"State": state, "Addr": addr, "Message": message},
    }
    if role == "manager":
        raw["ManagerStatus"] = {"Leader": leader, "Addr": f"{addr}:2377",
                                "Reachability": "reachable"}
        raw["Status"]["Addr"] = "0.0.0.0"
    return raw


def _task(task_id: str, node_id: str, state: str = "running",
          desired: str = "running", service: str = "svc1") -> dict[str, Any]:
    return {"ID": task_id, "ServiceID": service, "NodeID": node_id, "Slot": 1,
            "DesiredState": desired,
            "Status": {"State": state, "Timestamp": "2026-12-01T10:00:00Z"}}


NODES = [
    _node("w2id00000000", "worker2", state="down", message="heartbeat failure"),
    _node("mgrid0000000", "manager", role="manager", leader=True, addr="10.0.0.1"),
    _node("w1id00000000", "worker1", labels={"zone": "a"}, addr="10.0.0.2"),
]
TASKS = [
    _task("t1", "w1id00000000"), _task("t2", "w1id00000000"),
    _task("t3", "mgrid0000000"), _task("t4", "w1id00000000", state="shutdown",
                                       desired="shutdown"),
    _task("t5", "w2id00000000", state="pending"),
]


def test_nodes_parsed_with_engine_address_labels_and_task_counts() -> None:
    nodes = parse_nodes(NODES, TASKS)
    # Managers first, then by hostname.
    assert [n.hostname for n in nodes] == ["manager", "worker1", "worker2"]
    manager, worker1, worker2 = nodes
    assert manager.leader and manager.is_manager
    # A manager's Status.Addr is 0.0.0.0: its advertised address is the one to show.
    assert manager.address == "10.0.0.1"
    assert (worker1.address, worker1.engine_version, dict(worker1.labels)) == (
        "10.0.0.2", "20.10.24", {"zone": "a"})
    # Only tasks running and wanted running count.
    assert (manager.tasks_running, worker1.tasks_running, worker2.tasks_running) == (1, 2, 0)
    assert (worker2.state, worker2.message, worker2.ready) == ("down", "heartbeat failure",
                                                               False)


def test_snapshot_knows_nodes_down_and_tasks_per_node() -> None:
    service = {"ID": "svc1", "Spec": {"Name": "st_web", "Labels": {
        "com.docker.stack.namespace": "st"}, "Mode": {"Replicated": {"Replicas": 3}}},
        "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}}
    snap = parse_snapshot([service], TASKS, NODES, stack="st")
    assert [n.hostname for n in snap.nodes_down] == ["worker2"]
    worker1 = snap.node("worker1")
    assert worker1 is not None and worker1.tasks_running == 2
    assert {t.id for t in snap.tasks_on(worker1)} == {"t1", "t2"}
    assert snap.node("w1id") is worker1  # an id prefix
    assert snap.tasks_on("mgrid0000000")[0].node_name == "manager"


def test_plan_availability() -> None:
    nodes = parse_nodes(NODES, TASKS)
    drain = plan_availability(nodes, "worker1", "drain")
    assert drain is not None
    assert drain.argv == ("docker", "node", "update", "--availability", "drain",
                          "w1id00000000")
    assert drain.detail == "active -> drain"
    assert plan_availability(nodes, "worker1", "active") is None  # already: ok
    with pytest.raises(ConfigError, match="expected one of"):
        plan_availability(nodes, "worker1", "drained")


def test_node_names_resolve_or_fail_listing_the_nodes() -> None:
    nodes = parse_nodes(NODES)
    assert node_of(nodes, "w2id").hostname == "worker2"
    with pytest.raises(ConfigError, match="no node 'worker9'") as info:
        node_of(nodes, "worker9")
    assert "manager, worker1, worker2" in (info.value.fix or "")


def test_plan_labels_changes_only_what_differs() -> None:
    nodes = parse_nodes(NODES)
    command = plan_labels(nodes, "worker1", {"zone": "a", "disk": "ssd"}, ["gone", "zone2"])
    assert command is not None
    # zone=a is there already; 'gone'/'zone2' are absent: nothing to remove.
    assert command.argv == ("docker", "node", "update", "--label-add", "disk=ssd",
                            "w1id00000000")
    assert plan_labels(nodes, "worker1", {"zone": "a"}) is None
    removed = plan_labels(nodes, "worker1", {}, ["zone"])
    assert removed is not None and removed.argv[-3:] == ("--label-rm", "zone", "w1id00000000")
    with pytest.raises(ConfigError, match="both added and removed"):
        plan_labels(nodes, "worker1", {"zone": "b"}, ["zone"])


def test_plan_node_labels_from_values() -> None:
    nodes = parse_nodes(NODES)
    commands = plan_node_labels(nodes, {"worker1": {"zone": "a"}, "worker2": {"zone": "b"}})
    assert [(c.node, c.detail) for c in commands] == [("worker2", "zone=b")]
    with pytest.raises(ConfigError, match="swarm.node_labels: the swarm has no node 'wrker1'"):
        plan_node_labels(nodes, {"wrker1": {"zone": "a"}})


def test_parse_label_arguments() -> None:
    assert parse_labels(["zone=a", "empty=", "k=v=w"]) == {"zone": "a", "empty": "",
                                                          "k": "v=w"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_labels(["zone"])
