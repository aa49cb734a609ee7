"""A failed update that Swarm rolled back itself still names the task error and exit code
(pure: Engine API JSON in, Failure out). Swarm's rollback moves the service's UpdatedAt past
the failed task, which hid it: the message said only "update failed, Swarm state
rollback_started" while the task had exited 3 or could not bind its port."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.converge import Failure, failure_fix, failure_of
from deployer.swarm import parse_snapshot

BIND = ("starting container failed: ... Error starting userland proxy: listen tcp4 "
        "0.0.0.0:21811: bind: address already in use")


def _service(update_state: str | None, updated: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "ID": "svc1", "UpdatedAt": updated,
        "Spec": {"Name": "st_api", "Labels": {"com.docker.stack.namespace": "st"},
                 "Mode": {"Replicated": {"Replicas": 1}}},
        "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1},
    }
    if update_state:
        raw["UpdateStatus"] = {"State": update_state,
                               "Message": "update rolled back due to failure or early "
                               "termination of task t2"}
    return raw


def _task(task_id: str, state: str, at: str, err: str = "", code: int | None = None,
          desired: str = "shutdown") -> dict[str, Any]:
    status: dict[str, Any] = {"State": state, "Err": err, "Message": state, "Timestamp": at}
    if code is not None:
        status["ContainerStatus"] = {"ExitCode": code}
    return {"ID": task_id, "ServiceID": "svc1", "NodeID": "n1", "Slot": 1,
            "DesiredState": desired, "Status": status}


@pytest.mark.parametrize(("err", "code", "expected"), [
    ("task: non-zero exit (3)", 3, "task error: task: non-zero exit (3) (exit code 3)"),
    (BIND, None, "bind: address already in use"),
])
def test_rolled_back_update_names_the_failed_task(err: str, code: int | None,
                                                  expected: str) -> None:
    tasks = [
        _task("t1", "shutdown", "2026-12-01T10:00:00Z", code=0),
        _task("t2", "failed", "2026-12-01T10:00:20Z", err, code),
        _task("t3", "running", "2026-12-01T10:00:31Z", desired="running"),
    ]
    # The rollback began at :30, after the failed task at :20.
    snap = parse_snapshot([_service("rollback_started", "2026-12-01T10:00:30Z")], tasks,
                          stack="st")
    failure = failure_of(snap, snap.services[0])
    assert failure is not None
    assert failure.reason.startswith("update failed, Swarm state rollback_started")
    assert expected in failure.describe()


def test_an_old_failure_is_no_failure_of_a_healthy_service() -> None:
    # Without a failed update state, failures from before the last update stay ignored.
    tasks = [_task("t2", "failed", "2026-12-01T10:00:20Z", "task: non-zero exit (3)", 3),
             _task("t3", "running", "2026-12-01T10:00:31Z", desired="running")]
    snap = parse_snapshot([_service(None, "2026-12-01T10:00:30Z")], tasks, stack="st")
    assert failure_of(snap, snap.services[0]) is None


def test_port_conflicts_say_how_to_free_the_port() -> None:
    busy = failure_fix(Failure("llm-connector", "update failed", BIND, 128, "mgr1"))
    assert "another process on node mgr1" in busy
    assert "services.llm-connector.published_port" in busy
    scheduled = failure_fix(Failure("sklearn-model", "a task found no node to run on for 8 s",
                                    "no suitable node (host-mode port already in use on 1 node)"))
    assert "one task of sklearn-model per published port" in scheduled


# The engine going away mid-run, as its API says it (pure: the SDK's exception in, ours out).

@pytest.mark.parametrize("explanation", [
    "rpc error: code = Canceled desc = grpc: the client connection is closing",
    'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
    'dialing dial unix /run/docker/swarm/control.sock: connect: no such file or directory"',
])
def test_a_stopping_engine_is_unreachable_not_a_refusal(explanation: str) -> None:
    import docker.errors

    from deployer.engine.client import docker_errors
    from deployer.errors import ConnectError

    with pytest.raises(ConnectError) as info, docker_errors("mgr1"):
        raise docker.errors.APIError("500 Server Error", explanation=explanation)
    assert "shutting down or restarting" in info.value.message
    assert "swarm init" not in info.value.render()


@pytest.mark.parametrize(("kind", "doing", "rerun"), [
    ("ship-image", "shipping image app:1", "nothing was deployed yet"),
    ("wait", "waiting for stack app:1 to converge", "the rerun converges it"),
])
def test_an_interrupted_step_says_what_it_was_doing(kind: str, doing: str, rerun: str) -> None:
    from deployer.operations import Step

    step = Step(kind, "app:1")  # type: ignore[arg-type]  # kind: a StepKind literal
    assert step.doing == doing
    assert rerun in step.rerun_note and rerun in step.lost_fix
    assert "ssh HOST true" in step.lost_fix
