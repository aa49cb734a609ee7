"""Convergence on a cluster, pure: a rejected task names its node and the reason; a task no node
can take is recognised (Engine API JSON in, Failure out)."""

from __future__ import annotations

from typing import Any

from deployer.converge import (
    failure_fix,
    failure_of,
    unschedulable,
    unschedulable_failure,
)
from deployer.swarm import parse_snapshot

UPDATED = "2026-12-01T10:00:00Z"


def _service(replicas: int = 3, running: int = 1) -> dict[str, Any]:
    return {"ID": "svc1", "UpdatedAt": UPDATED,
            "Spec": {"Name": "st_web", "Labels": {"com.docker.stack.namespace": "st"},
                     "Mode": {"Replicated": {"Replicas": replicas}}},
            "ServiceStatus": {"RunningTasks": running, "DesiredTasks": replicas}}


def _task(task_id: str, node: str, state: str, err: str = "", *, slot: int = 1,
          desired: str = "running", at: str = "2026-12-01T10:00:05Z") -> dict[str, Any]:
    return {"ID": task_id, "ServiceID": "svc1", "NodeID": node, "Slot": slot,
            "DesiredState": desired,
            "Status": {"State": state, "Err": err, "Message": state, "Timestamp": at}}


NODES = [
    {"ID": "n-mgr", "Spec": {"Role": "manager", "Availability": "active"},
     "Description": {"Hostname": "mlc-manager"}, "Status": {"State": "ready"}},
    {"ID": "n-w1", "Spec": {"Role": "worker", "Availability": "active"},
     "Description": {"Hostname": "mlc-worker1"}, "Status": {"State": "ready"}},
]
NO_IMAGE = "No such image: mlops-standin:0123456789ab"


def test_rejected_tasks_name_their_node_and_the_reason() -> None:
    tasks = [
        _task("t1", "n-mgr", "running"),
        _task("t2", "n-w1", "rejected", NO_IMAGE, slot=2, desired="shutdown"),
        _task("t3", "n-w1", "rejected", NO_IMAGE, slot=2, at="2026-12-01T10:00:07Z"),
    ]
    snap = parse_snapshot([_service()], tasks, NODES, stack="st")
    failure = failure_of(snap, snap.services[0])
    assert failure is not None
    assert failure.node == "mlc-worker1"
    assert failure.reason == "2 task(s) failed (2 rejected by mlc-worker1)"
    assert failure.describe() == (
        f"web: 2 task(s) failed (2 rejected by mlc-worker1); task error on node mlc-worker1: "
        f"{NO_IMAGE}")
    assert "node mlc-worker1 lacks the image" in failure_fix(failure)


def test_without_nodes_read_the_failure_names_no_node() -> None:
    # The convergence wait reads nodes only when something failed: the same tasks without
    # them still fail, just without the node's name (no raw id on screen).
    tasks = [_task("t2", "n-w1", "rejected", NO_IMAGE, slot=2),
             _task("t3", "n-w1", "rejected", NO_IMAGE, slot=2)]
    snap = parse_snapshot([_service()], tasks, stack="st")
    failure = failure_of(snap, snap.services[0])
    assert failure is not None and failure.node == ""
    assert "on node" not in failure.describe() and NO_IMAGE in failure.describe()


def test_one_rejection_is_not_yet_a_failure() -> None:
    tasks = [_task("t1", "n-mgr", "running"),
             _task("t2", "n-w1", "rejected", NO_IMAGE, slot=2)]
    snap = parse_snapshot([_service()], tasks, NODES, stack="st")
    assert failure_of(snap, snap.services[0]) is None


def test_a_task_no_node_can_take_is_unschedulable() -> None:
    reason = ("no suitable node (max replicas per node limit exceed; scheduling constraints "
              "not satisfied on 1 node)")
    tasks = [_task("t1", "n-mgr", "running"),
             _task("t2", "n-w1", "running", slot=2),
             _task("t3", "", "pending", reason, slot=3)]
    snap = parse_snapshot([_service(running=2)], tasks, NODES, stack="st")
    service = snap.services[0]
    # Pending is not a failed state: only the wait's grace period turns it into a failure.
    assert failure_of(snap, service) is None
    stuck = unschedulable(snap, service)
    assert [t.id for t in stuck] == ["t3"]
    failure = unschedulable_failure(service, stuck[0], 8.4)
    assert failure.describe() == (
        f"web: a task found no node to run on for 8 s; task error: {reason}")
    assert "max_replicas_per_node" in failure_fix(failure)
    # A task merely starting is not unschedulable.
    starting = parse_snapshot([_service(running=2)],
                              [*tasks[:2], _task("t3", "", "pending", slot=3)], NODES,
                              stack="st")
    assert unschedulable(starting, starting.services[0]) == []
