"""Smoke tests proving each part of the test bed is real: SSH + Swarm on both managers, S3, MLflow.

They use paramiko, boto3 and the MLflow client directly (not the deployer), so a failure here
points at the bed, not at the project's code.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STACK_FILE = """\
version: "3.8"
services:
  web:
    image: {image}
    environment:
      PORT: "8080"
      SERVICE_NAME: web
    ports:
      - target: 8080
        published: {port}
        protocol: tcp
        mode: host
    deploy:
      endpoint_mode: dnsrr
  chatter:
    image: {image}
    environment:
      PORT: "8081"
      SERVICE_NAME: chatter
      HEARTBEAT_SECONDS: "0.5"
      LOG_LINE: "{line}"
    deploy:
      endpoint_mode: dnsrr
"""


class Remote:
    """A paramiko session on one of the bed's managers: exec argv, upload a file."""

    def __init__(self, manager: dict[str, Any]) -> None:
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(manager["known_hosts"])
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(
            manager["host"], port=manager["port"], username=manager["user"],
            key_filename=manager["key_file"], timeout=10, allow_agent=False,
            look_for_keys=False,
        )

    def run(self, *argv: str) -> str:
        import shlex

        _, stdout, stderr = self.client.exec_command(shlex.join(argv), timeout=60)
        out = stdout.read().decode()
        code = stdout.channel.recv_exit_status()
        assert code == 0, f"{argv} exited {code}: {stderr.read().decode()}"
        return out

    def put(self, text: str, path: str) -> None:
        with self.client.open_sftp() as sftp, sftp.open(path, "w") as handle:
            handle.write(text)

    def close(self) -> None:
        self.client.close()


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def replicas(remote: Remote, stack: str) -> dict[str, str]:
    out = remote.run("docker", "stack", "services", stack, "--format",
                     "{{.Name}} {{.Replicas}}")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


@pytest.fixture(params=["loopback", "remote"])
def manager(request: pytest.FixtureRequest, bed: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield {"name": request.param, **bed["managers"][request.param]}


def test_stack_lifecycle_over_ssh(manager: dict[str, Any], bed: dict[str, Any]) -> None:
    stack = f"smoke-{secrets.token_hex(3)}"
    line = f"smoke-heartbeat-{secrets.token_hex(4)}"
    port = 19000 + secrets.randbelow(400)
    remote = Remote(manager)
    try:
        # Each manager is its own host: its sessions see its own engine and state dir.
        assert remote.run("printenv", "MLOPS_STATE_DIR").strip() == manager["state_dir"]
        addr = remote.run("docker", "info", "--format", "{{.Swarm.NodeAddr}}").strip()
        assert addr == manager["host"]

        path = f"{manager['state_dir']}/{stack}.yml"
        remote.run("mkdir", "-p", manager["state_dir"])
        remote.put(STACK_FILE.format(image=bed["standin_image"], port=port, line=line), path)
        remote.run("docker", "stack", "deploy", "--resolve-image", "never", "-c", path, stack)
        wait_until("both services 1/1",
                   lambda: replicas(remote, stack) == {f"{stack}_web": "1/1",
                                                       f"{stack}_chatter": "1/1"})

        # The published host-mode port answers from the manager's own address.
        with urllib.request.urlopen(f"http://{manager['host']}:{port}/", timeout=5) as resp:
            assert json.loads(resp.read())["service"] == "web"

        remote.run("docker", "service", "scale", "--detach", f"{stack}_chatter=2")
        wait_until("chatter 2/2", lambda: replicas(remote, stack).get(f"{stack}_chatter") == "2/2")

        wait_until("the heartbeat in the logs", lambda: line in remote.run(
            "docker", "service", "logs", "--raw", f"{stack}_chatter"))
    finally:
        remote.run("docker", "stack", "rm", stack)
        wait_until("stack removed", lambda: stack not in remote.run(
            "docker", "service", "ls", "--format", "{{.Name}}"))
        remote.close()


def test_managers_are_separate_swarms(bed: dict[str, Any]) -> None:
    ids = set()
    for name in ("loopback", "remote"):
        remote = Remote(bed["managers"][name])
        try:
            ids.add(remote.run("docker", "info", "--format", "{{.Swarm.Cluster.ID}}").strip())
        finally:
            remote.close()
    assert len(ids) == 2 and "" not in ids


def test_unknown_host_key_is_refused(bed: dict[str, Any], tmp_path: Path) -> None:
    manager = dict(bed["managers"]["remote"])
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    manager["known_hosts"] = str(empty)
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        Remote(manager)


def test_s3_put_get(bed: dict[str, Any]) -> None:
    import boto3

    s3 = bed["s3"]
    client = boto3.client("s3", endpoint_url=s3["endpoint"], region_name=s3["region"],
                          aws_access_key_id=s3["access_key"],
                          aws_secret_access_key=s3["secret_key"])
    key = f"smoke/{secrets.token_hex(4)}.bin"
    body = secrets.token_bytes(4096)
    client.put_object(Bucket=s3["bucket"], Key=key, Body=body)
    try:
        assert client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read() == body
    finally:
        client.delete_object(Bucket=s3["bucket"], Key=key)
    bad = boto3.client("s3", endpoint_url=s3["endpoint"], region_name=s3["region"],
                       aws_access_key_id=s3["access_key"], aws_secret_access_key="wrong")
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKey"):
        bad.get_object(Bucket=s3["bucket"], Key=key)


def test_mlflow_run_round_trip_stores_artifacts_in_s3(bed: dict[str, Any],
                                                      tmp_path: Path) -> None:
    import boto3
    from mlflow.tracking import MlflowClient

    # An explicit client: mlflow's fluent API keeps a process-wide tracking URI that other
    # in-process tests (the model services) point elsewhere.
    client = MlflowClient(tracking_uri=bed["mlflow"]["tracking_uri"])
    experiment_id = client.create_experiment(f"smoke-{secrets.token_hex(3)}")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    artifact = tmp_path / "note.txt"
    artifact.write_text(secrets.token_hex(16))
    client.log_param(run_id, "trees", 7)
    client.log_metric(run_id, "accuracy", 0.8125)
    client.log_artifact(run_id, str(artifact))
    client.set_terminated(run_id)

    got = client.get_run(run_id)
    assert got.data.params["trees"] == "7"
    assert got.data.metrics["accuracy"] == pytest.approx(0.8125)
    assert got.info.status == "FINISHED"
    (tmp_path / "back").mkdir()
    back = client.download_artifacts(run_id, "note.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == artifact.read_text()

    s3 = bed["s3"]
    store = boto3.client("s3", endpoint_url=s3["endpoint"], region_name=s3["region"],
                         aws_access_key_id=s3["access_key"],
                         aws_secret_access_key=s3["secret_key"])
    keys = [obj["Key"] for obj in store.list_objects_v2(
        Bucket=s3["bucket"], Prefix="artifacts/").get("Contents", [])]
    assert any(key.endswith(f"{run_id}/artifacts/note.txt") for key in keys), keys
