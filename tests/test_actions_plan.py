"""The actions from facts (no engine, no manager): recorded facts in, commands out.

A recording connector answers the state, lock and history scripts from fixed facts, keeps the
audit lines appended and every command it is asked to run; its Docker client replays recorded
Engine API answers (services, tasks, secrets, ...) and records the API calls that change
something. Each test feeds
facts to an action and asserts the exact commands, in order, and the audit line — as the push
plan tests do (tests/test_operations.py). ``wait=False``: convergence is the real-Swarm tests'.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from deployer.actions import services, stack
from deployer.actions.base import ActionContext
from deployer.connectors.base import Connector, RunResult
from deployer.errors import ConfigError, DeployError
from deployer.output import Reporter

STACK = "acts"
STATE_DIR = "/state"
STACK_FILE = """services:
  web:
    image: mlops/web:aaaaaaaaaaaa
    secrets: [google_api_key]
secrets:
  google_api_key:
    external: true
    name: google_api_key_111111111111
"""


def service(name: str, replicas: int = 1, mode: str = "replicated") -> dict[str, Any]:
    spec_mode: dict[str, Any] = {"Replicated": {"Replicas": replicas}} if mode == "replicated" \
        else {"Global": {}}
    return {
        "ID": f"id-{name}", "Version": {"Index": 5},
        "CreatedAt": "2026-12-01T10:00:00Z", "UpdatedAt": "2026-12-01T10:00:00Z",
        "Spec": {
            "Name": f"{STACK}_{name}", "Mode": spec_mode,
            "Labels": {"com.docker.stack.namespace": STACK},
            "TaskTemplate": {"ContainerSpec": {"Image": f"mlops/{name}:aaaaaaaaaaaa"}},
        },
        "ServiceStatus": {"RunningTasks": replicas, "DesiredTasks": replicas},
    }


class FakeApi:
    """Recorded Engine API answers; the calls that change something are kept in ``calls``."""

    def __init__(self, services: list[dict[str, Any]], secrets: Iterable[str] = (),
                 volumes: Iterable[str] = ()) -> None:
        self.services_list = services
        self.secrets_list = [{"Spec": {"Name": n}} for n in secrets]
        self.volumes_list = [{"Name": n} for n in volumes]
        self.calls: list[tuple[str, str]] = []

    def services(self, filters: Any = None, status: bool = False) -> list[dict[str, Any]]:
        return self.services_list

    def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        return []

    def nodes(self) -> list[dict[str, Any]]:
        return []

    def networks(self, filters: Any = None) -> list[dict[str, Any]]:
        return [{"Name": f"{STACK}_default"}] if self.services_list else []

    def secrets(self, filters: Any = None) -> list[dict[str, Any]]:
        return self.secrets_list

    def configs(self, filters: Any = None) -> list[dict[str, Any]]:
        return []

    def volumes(self, filters: Any = None) -> dict[str, Any]:
        return {"Volumes": self.volumes_list}

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        return []

    def remove_secret(self, name: str) -> None:
        self.calls.append(("remove_secret", name))

    def remove_config(self, name: str) -> None:
        self.calls.append(("remove_config", name))

    def remove_volume(self, name: str) -> None:
        self.calls.append(("remove_volume", name))


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


class RecordingConnector(Connector):
    """Answers the deployer's own scripts from facts; records every other command."""

    def __init__(self, api: FakeApi, *, current: int | None = 1,
                 metas: Mapping[int, Mapping[str, Any]] | None = None,
                 files: Mapping[str, bytes] | None = None, lock_holder: str | None = None) -> None:
        self.host = "recorded"
        self.api = api
        self.current = current
        self.metas = dict(metas or {1: {"outcome": "deployed"}})
        self.files = dict(files or {})
        self.lock_holder = lock_holder
        self.commands: list[list[str]] = []
        self.audit: list[dict[str, Any]] = []

    def _script(self, argv: list[str], stdin: Any, on_line: Any) -> RunResult | None:
        if argv[:2] != ["sh", "-c"] or len(argv) < 4:
            return None
        name = argv[3]
        if name == "mlops-state":
            revisions = " ".join(str(n) for n in self.metas)
            meta = json.dumps(self.metas.get(self.current or 0, {})) if self.current else ""
            current = "" if self.current is None else str(self.current)
            return RunResult(0, f"dir={STATE_DIR}\ncurrent={current}\nrevisions={revisions}\n"
                             f"--meta--\n{meta}\n--services--\n", "")
        if name == "mlops-lock":
            if self.lock_holder:
                for line in ("HELD", "pid=1", f"holder={self.lock_holder}",
                             "since=2026-12-01T10:00:00Z"):
                    on_line(line)
                return RunResult(2, "", "")
            on_line("LOCKED")
            return RunResult(0, "", "")
        if name == "mlops-history":
            body = "".join(f"--revision {n}\n{json.dumps(m)}\n" for n, m in self.metas.items())
            return RunResult(0, f"current={self.current or ''}\n{body}", "")
        return None

    def run(self, argv: list[str], *, stdin: Any = None, timeout: float | None = None,
            check: bool = True, on_line: Any = None, cancel: Any = None) -> RunResult:
        answer = self._script(argv, stdin, on_line)
        if answer is not None:
            return answer
        self.commands.append(argv)
        if argv[:3] == ["docker", "stack", "rm"]:
            self.api.services_list = []  # what the engine reports once it removed them
        return RunResult(0, "", "")

    def put_file(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self.files[path] = data

    def append_file(self, data: bytes, path: str) -> None:
        if path.endswith("/audit.log"):
            self.audit.append(json.loads(data))
        else:
            self.files[path] = self.files.get(path, b"") + data

    def get_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def docker_client(self) -> Any:
        return FakeClient(self.api)

    def stream_client(self) -> Any:
        return FakeClient(self.api)

    def close(self) -> None:
        return None


def context(conn: RecordingConnector) -> ActionContext:
    return ActionContext(conn, STACK, Reporter(stream=_Sink()), wait=False, timeout=5)


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


# ---------------------------------------------------------------------------------------------


def test_scale_runs_one_scale_command_under_the_lock_and_audits_the_counts() -> None:
    conn = RecordingConnector(FakeApi([service("web", 1), service("api", 2)]))
    changes = services.scale(context(conn), {"web": 3, "api": 2})
    assert conn.commands == [["docker", "service", "scale", "--detach", f"{STACK}_web=3"]]
    assert [(c.service, c.old, c.new) for c in changes] == [("web", 1, 3), ("api", 2, 2)]
    assert [(a["action"], a["services"], a["revision"]) for a in conn.audit] == [
        ("scale", {"web": 3}, 1)
    ]


def test_scale_to_the_same_count_runs_nothing_and_takes_no_lock() -> None:
    conn = RecordingConnector(FakeApi([service("web", 2)]), lock_holder="someone@else")
    services.scale(context(conn), {"web": 2})
    assert conn.commands == [] and conn.audit == []


def test_scale_refuses_an_unknown_or_global_service_before_any_command() -> None:
    conn = RecordingConnector(FakeApi([service("web"), service("agent", mode="global")]))
    with pytest.raises(ConfigError, match="no service 'nope'.*"):
        services.scale(context(conn), {"nope": 1})
    with pytest.raises(ConfigError, match="global service"):
        services.scale(context(conn), {"agent": 2})
    assert conn.commands == [] and conn.audit == []


def test_an_action_while_another_run_holds_the_lock_is_refused_naming_it() -> None:
    conn = RecordingConnector(FakeApi([service("web", 1)]), lock_holder="ann@laptop")
    with pytest.raises(DeployError, match="ann@laptop"):
        services.scale(context(conn), {"web": 2})
    assert conn.commands == [] and conn.audit == []


def test_service_rollback_is_swarms_previous_spec() -> None:
    conn = RecordingConnector(FakeApi([service("web")]))
    services.rollback_service(context(conn), "web")
    assert conn.commands == [["docker", "service", "rollback", "--detach", f"{STACK}_web"]]
    assert [(a["action"], a["service"]) for a in conn.audit] == [("rollback-service", "web")]


def test_restart_and_remove_of_a_service() -> None:
    conn = RecordingConnector(FakeApi([service("web"), service("api")]))
    services.restart(context(conn), ["web", f"{STACK}_api"])
    services.remove_service(context(conn), ["api"])
    assert conn.commands == [
        ["docker", "service", "update", "--force", "--detach", f"{STACK}_web"],
        ["docker", "service", "update", "--force", "--detach", f"{STACK}_api"],
        ["docker", "service", "rm", f"{STACK}_api"],
    ]
    assert [(a["action"], a["services"]) for a in conn.audit] == [
        ("restart", ["web", "api"]), ("remove-service", ["api"])
    ]


def test_remove_stack_rms_it_then_drops_its_secrets_keeps_volumes_and_the_pointer() -> None:
    api = FakeApi([service("web")], secrets=["google_api_key_111111111111"],
                  volumes=[f"{STACK}_minio-data"])
    conn = RecordingConnector(api)
    stack.remove(context(conn))
    assert conn.commands == [["docker", "stack", "rm", STACK],
                             ["rm", "-f", f"{STATE_DIR}/{STACK}/current"]]
    assert api.calls == [("remove_secret", "google_api_key_111111111111")]
    assert [(a["action"], a["revision"], a["volumes"]) for a in conn.audit] == [
        ("remove", 1, False)
    ]


def test_remove_with_volumes_asks_and_a_no_removes_nothing() -> None:
    api = FakeApi([service("web")], volumes=[f"{STACK}_minio-data"])
    conn = RecordingConnector(api)
    stack.remove(context(conn), volumes=True, confirm=lambda question: False)
    assert conn.commands == [] and api.calls == [] and conn.audit == []
    stack.remove(context(conn), volumes=True, confirm=lambda question: True)
    assert ("remove_volume", f"{STACK}_minio-data") in api.calls


def test_remove_of_nothing_is_ok_and_changes_nothing() -> None:
    conn = RecordingConnector(FakeApi([]), current=None, metas={})
    found = stack.remove(context(conn))
    assert found.empty and conn.commands == [] and conn.audit == []


def _rollback_conn(metas: Mapping[int, Mapping[str, Any]], current: int) -> RecordingConnector:
    files = {f"{STATE_DIR}/{STACK}/revisions/{n}/stack.yml": STACK_FILE.encode() for n in metas}
    files.update({f"{STATE_DIR}/{STACK}/revisions/{n}/meta.json": json.dumps(m).encode()
                  for n, m in metas.items()})
    return RecordingConnector(FakeApi([service("web")], secrets=["google_api_key_111111111111"]),
                              current=current, metas=metas, files=files)


def test_stack_rollback_redeploys_the_previous_deployed_revision() -> None:
    images = {"web": {"ref": "mlops/web:aaaaaaaaaaaa", "id": "sha256:" + "a" * 64}}
    metas = {1: {"outcome": "deployed", "images": images}, 2: {"outcome": "rolled-back"},
             3: {"outcome": "deployed"}}
    conn = _rollback_conn(metas, current=3)
    shipped: list[Mapping[str, str]] = []
    target = stack.rollback(context(conn), to_revision=None, resolve_image="never",
                            materials=dict, ensure_images=shipped.append)
    assert target == 1
    assert shipped == [{"mlops/web:aaaaaaaaaaaa": "sha256:" + "a" * 64}]
    assert conn.commands == [["docker", "stack", "deploy", "--prune", "--detach=true",
                              "--resolve-image", "never", "--compose-file",
                              f"{STATE_DIR}/{STACK}/revisions/1/stack.yml", STACK]]
    assert conn.files[f"{STATE_DIR}/{STACK}/current"] == b"1\n"
    assert [(a["action"], a["revision"], a["from_revision"]) for a in conn.audit] == [
        ("rollback", 1, 3)
    ]


def test_stack_rollback_refuses_a_missing_or_failed_revision_before_any_change() -> None:
    conn = _rollback_conn({1: {"outcome": "deployed"}, 2: {"outcome": "failed"}}, current=1)
    with pytest.raises(ConfigError, match="no revision 7"):
        stack.rollback(context(conn), to_revision=7, resolve_image="never", materials=dict,
                       ensure_images=lambda images: None)
    with pytest.raises(DeployError, match="never deployed successfully"):
        stack.rollback(context(conn), to_revision=2, resolve_image="never", materials=dict,
                       ensure_images=lambda images: None)
    assert conn.commands == [] and conn.audit == []
