"""The Swarm read model's pure parsing, from Engine API JSON shaped as the API documents it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer.swarm import (
    STACK_LABEL,
    PortState,
    diff_snapshots,
    parse_snapshot,
    parse_time,
    read_snapshot,
    short_service_name,
    strip_digest,
)

T0 = "2026-11-26T10:00:00.123456789Z"


def service(
    sid: str,
    name: str,
    *,
    stack: str | None = "tui-a",
    mode: dict[str, Any] | None = None,
    running: int = 1,
    desired: int = 1,
    completed: int = 0,
    image: str = "mlops-standin:latest@sha256:" + "a" * 64,
    ports: list[dict[str, Any]] | None = None,
    update: dict[str, Any] | None = None,
    version: int = 10,
) -> dict[str, Any]:
    labels = {STACK_LABEL: stack} if stack else {}
    raw: dict[str, Any] = {
        "ID": sid,
        "Version": {"Index": version},
        "CreatedAt": "2026-11-26T09:00:00.5Z",
        "UpdatedAt": T0,
        "Spec": {
            "Name": f"{stack}_{name}" if stack else name,
            "Labels": labels,
            "TaskTemplate": {"ContainerSpec": {"Image": image}},
            "Mode": mode if mode is not None else {"Replicated": {"Replicas": desired}},
            "EndpointSpec": {"Mode": "dnsrr", "Ports": ports or []},
        },
        "Endpoint": {"Spec": {}, "Ports": ports or []},
        "ServiceStatus": {
            "RunningTasks": running,
            "DesiredTasks": desired,
            "CompletedTasks": completed,
        },
    }
    if update is not None:
        raw["UpdateStatus"] = update
    return raw


def task(
    tid: str,
    sid: str,
    *,
    slot: int | None = 1,
    node: str = "node1",
    state: str = "running",
    desired: str = "running",
    err: str | None = None,
    exit_code: int = 0,
    ts: str = T0,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "Timestamp": ts,
        "State": state,
        "Message": state,
        "ContainerStatus": {"ContainerID": f"c-{tid}", "PID": 10, "ExitCode": exit_code},
        "PortStatus": {},
    }
    if err:
        status["Err"] = err
    raw: dict[str, Any] = {
        "ID": tid,
        "ServiceID": sid,
        "NodeID": node,
        "Status": status,
        "DesiredState": desired,
    }
    if slot is not None:
        raw["Slot"] = slot
    return raw


NODES = [
    {
        "ID": "node1",
        "Description": {"Hostname": "mgr-1"},
        "Spec": {"Role": "manager", "Availability": "active"},
        "Status": {"State": "ready"},
        "ManagerStatus": {"Leader": True, "Reachability": "reachable"},
    }
]


def test_parse_time_handles_nanoseconds_and_zero() -> None:
    assert parse_time(T0) == datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z").year == 1
    assert parse_time(None).year == 1
    assert parse_time("garbage").year == 1
    assert parse_time("2026-11-26T10:00:00+01:00") == datetime(2026, 11, 26, 9, tzinfo=UTC)


def test_names_and_images() -> None:
    assert strip_digest("repo:5000/img:1.2@sha256:abc") == "repo:5000/img:1.2"
    assert strip_digest("img") == "img"
    assert short_service_name("tui-a_web", "tui-a") == "web"
    assert short_service_name("other_web", "tui-a") == "other_web"
    assert short_service_name("web", None) == "web"


def test_replicated_service_with_tasks_and_nodes() -> None:
    ports = [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 21001, "PublishMode": "host"},
        {"Protocol": "udp", "TargetPort": 53, "PublishMode": "ingress"},
    ]
    snap = parse_snapshot(
        [service("s1", "web", running=2, desired=2, ports=ports)],
        [
            task("t1", "s1", slot=1),
            task("t2", "s1", slot=2, ts="2026-11-26T10:00:05Z"),
            task(
                "t0",
                "s1",
                slot=1,
                state="shutdown",
                desired="shutdown",
                exit_code=0,
                ts="2026-11-26T09:59:00Z",
            ),
            task("tx", "unknown-service"),
        ],
        NODES,
        stack="tui-a",
    )
    (svc,) = snap.services
    assert svc.name == "tui-a_web" and svc.short_name == "web" and svc.stack == "tui-a"
    assert svc.mode == "replicated"
    assert (svc.replicas_running, svc.replicas_desired) == (2, 2)
    assert svc.replicas_text == "2/2"
    assert svc.image == "mlops-standin:latest"
    assert svc.ports == (
        PortState(published=None, target=53, protocol="udp", mode="ingress"),
        PortState(published=21001, target=8080, protocol="tcp", mode="host"),
    )
    assert str(svc.ports[1]) == "21001->8080 (host)"
    assert svc.health == "healthy" and svc.converged
    assert svc.version == 10 and svc.update_state is None
    # Tasks of unknown services are dropped; current ones first, by slot.
    assert [t.id for t in snap.tasks_of(svc)] == ["t1", "t2", "t0"]
    assert [t.id for t in snap.current_tasks_of("s1")] == ["t1", "t2"]
    t1 = snap.tasks_of(svc)[0]
    assert t1.node_name == "mgr-1" and t1.service_name == "web"
    assert t1.exit_code is None, "a running task has no exit code yet"
    assert snap.tasks_of(svc)[2].exit_code == 0
    assert t1.container_id == "c-t1"
    assert t1.age(t1.timestamp + timedelta(seconds=5)) == timedelta(seconds=5)
    assert snap.leader is not None and snap.leader.hostname == "mgr-1"
    assert snap.service("web") is svc and snap.service("tui-a_web") is svc
    assert snap.service("nope") is None


def test_health_from_tasks() -> None:
    snap = parse_snapshot(
        [
            service("a", "starting", running=0, desired=1),
            service("b", "sick", running=0, desired=1),
            service("c", "crashing", running=1, desired=2),
            service("d", "idle", running=0, desired=0),
            service("e", "scaled-down", running=1, desired=1),
        ],
        [
            task("a1", "a", state="starting"),
            task(
                "b1",
                "b",
                state="failed",
                desired="shutdown",
                exit_code=137,
                err="task: non-zero exit (137): dockerexec: unhealthy container",
            ),
            task("c1", "c", slot=1),
            task(
                "c2",
                "c",
                slot=2,
                state="failed",
                desired="shutdown",
                exit_code=3,
                err="task: non-zero exit (3)",
            ),
            task("e1", "e", slot=1),
            # A failed task left over from slot 2, which no longer exists after a scale-down.
            task("e2", "e", slot=2, state="failed", desired="shutdown", exit_code=1, err="x"),
        ],
        stack="tui-a",
    )
    health = {s.short_name: s.health for s in snap.services}
    assert health == {
        "starting": "starting",
        "sick": "unhealthy",
        "crashing": "failing",
        "idle": "idle",
        "scaled-down": "healthy",
    }
    assert {s.short_name for s in snap.services if s.converged} == {"idle", "scaled-down"}
    assert not snap.converged
    failed = snap.tasks_of(snap.service("sick") or "")[0]
    assert failed.exit_code == 137 and failed.is_failure and "unhealthy" in failed.error


def test_a_newer_task_in_the_slot_hides_an_older_failure() -> None:
    snap = parse_snapshot(
        [service("a", "web", running=1, desired=1)],
        [
            task(
                "old",
                "a",
                state="failed",
                desired="shutdown",
                exit_code=1,
                err="boom",
                ts="2026-11-26T09:00:00Z",
            ),
            task("new", "a", ts="2026-11-26T09:01:00Z"),
        ],
    )
    assert snap.services[0].health == "healthy"


def test_jobs_and_global() -> None:
    snap = parse_snapshot(
        [
            service(
                "j",
                "migrate",
                mode={"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 2}},
                running=0,
                desired=1,
                completed=2,
            ),
            service(
                "k",
                "broken-job",
                mode={"ReplicatedJob": {"TotalCompletions": 1}},
                running=0,
                desired=1,
                completed=0,
            ),
            service("g", "agent", mode={"Global": {}}, running=1, desired=1),
            service("h", "gjob", mode={"GlobalJob": {}}, running=0, desired=0, completed=1),
        ],
        [
            task("j1", "j", state="complete", desired="complete", slot=1),
            task("j2", "j", state="complete", desired="complete", slot=2),
            task(
                "k1",
                "k",
                state="failed",
                desired="complete",
                exit_code=2,
                err="task: non-zero exit (2)",
            ),
            task("g1", "g", slot=None, node="node1"),
            task("h1", "h", slot=None, state="complete", desired="complete"),
        ],
    )
    by = {s.short_name: s for s in snap.services}
    job = by["migrate"]
    assert job.mode == "replicated-job" and job.is_job
    assert (job.replicas_desired, job.jobs_completed, job.jobs_total) == (2, 2, 2)
    assert job.health == "complete" and job.converged
    assert job.replicas_text == "0/2 (2/2 completed)"
    assert by["broken-job"].health == "failed" and not by["broken-job"].converged
    assert by["agent"].mode == "global" and by["agent"].converged
    assert by["gjob"].mode == "global-job" and by["gjob"].health == "complete"
    assert by["gjob"].replicas_text == "0/0 (1 completed)"
    assert by["agent"].jobs_completed is None


def test_update_states_block_convergence() -> None:
    snap = parse_snapshot(
        [
            service("u", "updating", update={"State": "updating", "Message": "update in progress"}),
            service(
                "r",
                "rolled",
                update={"State": "rollback_completed", "Message": "rollback completed"},
            ),
            service("c", "done", update={"State": "completed", "Message": "update completed"}),
        ],
        [task("u1", "u"), task("r1", "r"), task("c1", "c")],
    )
    by = {s.short_name: s for s in snap.services}
    assert by["updating"].updating and not by["updating"].converged
    assert by["updating"].update_message == "update in progress"
    assert not by["rolled"].converged
    assert by["done"].converged


def test_engine_without_service_status_counts_tasks() -> None:
    raw = service("s", "web", desired=3)
    del raw["ServiceStatus"]
    snap = parse_snapshot([raw], [task("1", "s", slot=1), task("2", "s", slot=2, state="starting")])
    svc = snap.services[0]
    assert (svc.replicas_running, svc.replicas_desired) == (1, 3)
    assert svc.health == "starting"


def test_non_stack_services_keep_their_full_name() -> None:
    snap = parse_snapshot([service("x", "loose", stack=None), service("y", "web")], [])
    by = {s.id: s for s in snap.services}
    assert by["x"].short_name == "loose" and by["x"].stack is None
    assert by["y"].short_name == "web" and by["y"].stack == "tui-a"


def test_diff_snapshots_reports_changes() -> None:
    old = parse_snapshot([service("a", "web", version=1), service("b", "gone")], [task("a1", "a")])
    new = parse_snapshot(
        [
            service("a", "web", version=2, image="mlops-standin:v2", update={"State": "updating"}),
            service("c", "new"),
        ],
        [
            task("a1", "a"),
            task(
                "a2",
                "a",
                slot=2,
                state="failed",
                desired="shutdown",
                exit_code=3,
                err="task: non-zero exit (3)",
            ),
        ],
    )
    assert diff_snapshots(None, new) == []
    events = {(e.kind, e.service, e.detail) for e in diff_snapshots(old, new)}
    assert events == {
        ("service-updated", "web", "mlops-standin:v2 (updating)"),
        ("service-created", "new", "mlops-standin:latest"),
        ("service-removed", "gone", ""),
        ("task-failed", "web.2", "task: non-zero exit (3) (exit 3)"),
    }
    assert diff_snapshots(new, new) == []


class CountingApi:
    """Records the calls the read model makes (a stand-in for docker.APIClient)."""

    def __init__(self, n: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.n = n

    def services(self, filters: Any = None, status: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("services", (filters, status)))
        return [service(f"s{i}", f"svc{i}") for i in range(self.n)]

    def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("tasks", filters))
        return [task(f"t{i}", f"s{i}") for i in range(self.n)]

    def nodes(self, filters: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("nodes", filters))
        return NODES


@pytest.mark.parametrize("n", [1, 50])
def test_read_snapshot_makes_three_calls_filtered_by_stack(n: int) -> None:
    api = CountingApi(n)
    snap = read_snapshot(api, "tui-a")
    assert len(snap.services) == n and snap.stack == "tui-a"
    assert api.calls == [
        ("services", ({"label": f"{STACK_LABEL}=tui-a"}, True)),
        ("tasks", {"label": f"{STACK_LABEL}=tui-a"}),
        ("nodes", None),
    ]
    api2 = CountingApi(n)
    read_snapshot(api2, None, include_nodes=False)
    assert [c[0] for c in api2.calls] == ["services", "tasks"]
    assert api2.calls[0][1] == ({}, True)


# Recorded from the test bed's engine by `tests/tui_stack.py record` (a stack showing each state).
RECORDING = Path(__file__).parent / "data" / "swarm_tui_rec.json"


def test_recorded_stack_parses_into_the_states_it_was_built_to_show() -> None:
    rec = json.loads(RECORDING.read_text())
    snap = parse_snapshot(
        rec["services"],
        rec["tasks"],
        rec["nodes"],
        stack="tui-rec",
        taken_at=datetime.fromisoformat(rec["taken_at"]),
    )
    by = {s.short_name: s for s in snap.services}
    assert sorted(by) == ["agent", "api", "crash", "idle", "migrate", "sick", "web"]
    assert {n: s.health for n, s in by.items()} == {
        "agent": "healthy",  # global, one node
        "api": "healthy",
        "crash": "failing",  # exits 3 in a loop
        "idle": "idle",  # 0 replicas
        "migrate": "complete",  # replicated job, done
        "sick": "unhealthy",  # healthcheck answers 503: the engine keeps replacing it
        "web": "degraded",  # 2 replicas, one host-mode port, one node: one task can't schedule
    }
    assert by["agent"].mode == "global" and by["migrate"].mode == "replicated-job"
    assert by["web"].replicas_text == "1/2"
    assert [str(p) for p in by["web"].ports] == ["21001->8080 (host)"]
    assert by["api"].image == "mlops-standin:latest"
    assert {n for n, s in by.items() if s.converged} == {"agent", "api", "idle", "migrate"}
    crash_tasks = snap.tasks_of(by["crash"])
    assert crash_tasks[0].is_current and crash_tasks[0].exit_code is None
    assert {t.exit_code for t in crash_tasks[1:]} == {3}
    assert all(t.error == "task: non-zero exit (3)" for t in crash_tasks[1:])
    pending = snap.current_tasks_of(by["web"])[1]
    assert pending.state == "pending" and "no suitable node" in pending.error
    assert snap.leader is not None and snap.leader.role == "manager"
    assert all(t.node_name == snap.leader.hostname for t in snap.tasks if t.node_id)
