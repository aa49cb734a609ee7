"""Data survives: MLflow runs, registered model versions and S3 artifacts of a stack of the real
mlflow-server and S3-store images (SeaweedFS, as the offline overlay deploys) outlive
`deployer remove` (without --volumes) + `push`, and the S3 and MLflow containers killed in the
middle of a run; every count is printed with the figures at the end of the run.

Only those two services and the bucket-init job run (the others at 0 replicas); the images are
the end-to-end tests' own (``mlops-e2e/*``, built by `deployer build`: an ``ok`` when already
built, so the cost is shared with tests/test_stack_e2e.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from tests.figures import record
from tests.real_images import IMAGES, OFFLINE, ca_cert_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
DEPLOYER = [str(Path(sys.executable).parent / "deployer")]
#: Host ports of this test (20430-20436).
MLFLOW_PORT, S3_PORT = 20434, 20435
RUNS = 3


class DataStack:
    def __init__(self, bed: dict[str, Any], tmp: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bed = bed
        self.name = f"dsv-{tag}"
        self.api = docker.APIClient(base_url=bed["docker_host"], version="auto")
        self.s3 = {"access_key": f"dsv{tag}", "secret_key": uuid.uuid4().hex}
        services: dict[str, Any] = {
            name: {"image": IMAGES[name], "published_port": 20430 + i, "replicas": 0}
            for i, name in enumerate(["gradio-frontend", "llm-connector", "sklearn-model",
                                      "cnn-image"])
        }
        services["mlflow-server"] = {"image": IMAGES["mlflow-server"],
                                     "published_port": MLFLOW_PORT}
        services["minio"] = {"image": IMAGES["minio"], "published_port": S3_PORT,
                             "published_console_port": 20436}
        self.values = tmp / "dsv-values.yaml"
        self.values.write_text(yaml.safe_dump({
            "stack": {"name": self.name}, "services": services,
            "jobs": {"bucket-init": {"image": IMAGES["sklearn-model"]}},
            "s3": {**self.s3, "seaweedfs_image": IMAGES["minio"]},
        }))
        self.env = {**os.environ, "GOOGLE_API_KEY": "dsv-" + tag,
                    "MLOPS_STATE_DIR": str(tmp / "state"), "DOCKER_HOST": bed["docker_host"]}
        self.tracking = f"http://127.0.0.1:{MLFLOW_PORT}"

    def deployer(self, command: str, *extra: str, timeout: float = 900) -> tuple[int, str]:
        argv = [*DEPLOYER, command, "-f", str(OFFLINE), "-f", str(self.values),
                "--set", "swarm.endpoint_mode=dnsrr", "--set", "swarm.publish_mode=host",
                "--set", "s3.backend=seaweedfs", *extra]
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def wait_mlflow(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.tracking}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"MLflow at {self.tracking} did not come back in {timeout:g} s")

    def wait_s3(self, timeout: float = 180) -> None:
        """Until the S3 store lists the bucket and serves an object of it again (SeaweedFS
        takes longer than MLflow, and lists before its volume server serves reads: a GetObject
        answered InternalError right after a redeploy, seen once in a full run)."""
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{S3_PORT}",
                          aws_access_key_id=self.s3["access_key"],
                          aws_secret_access_key=self.s3["secret_key"], region_name="us-east-1")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                listed = s3.list_objects_v2(Bucket="mlflow", MaxKeys=1).get("Contents") or []
                for obj in listed:
                    s3.get_object(Bucket="mlflow", Key=obj["Key"])["Body"].read()
                return
            except (BotoCoreError, ClientError):
                time.sleep(1)
        raise AssertionError(f"the S3 store did not come back in {timeout:g} s")

    def containers(self, service: str) -> list[dict[str, Any]]:
        return self.api.containers(filters={
            "label": f"com.docker.swarm.service.name={self.name}_{service}"})

    def cleanup(self) -> None:
        self.deployer("remove", "--volumes", "--yes", timeout=300)
        label = f"com.docker.stack.namespace={self.name}"
        for container in self.api.containers(filters={"label": label}, all=True):
            self.api.remove_container(container["Id"], force=True)
        for volume in self.api.volumes(filters={"label": label}).get("Volumes") or []:
            try:
                self.api.remove_volume(volume["Name"], force=True)
            except docker.errors.APIError:
                pass


@pytest.fixture
def data_stack(bed: dict[str, Any], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[DataStack]:
    # A call to a server that is down fails in seconds (the test waits for it itself).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    stack = DataStack(bed, tmp_path)
    yield stack
    stack.cleanup()


def _client(stack: DataStack) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking, registry_uri=stack.tracking)


def _counts(stack: DataStack, experiment: str, model: str) -> dict[str, int]:
    """Runs, model versions and artifact files (read back through MLflow from the S3 store)."""
    import boto3

    client = _client(stack)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{S3_PORT}",
                      aws_access_key_id=stack.s3["access_key"],
                      aws_secret_access_key=stack.s3["secret_key"], region_name="us-east-1")
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow")
            for obj in page.get("Contents", [])]
    objects = len(keys)
    # Each run's notes.txt, read from the S3 store itself, with the text that run wrote.
    wanted = {f"run {run.data.params['n']}": run.info.run_id for run in runs}
    artifacts = 0
    for key in keys:
        if key.endswith("/notes.txt"):
            text = s3.get_object(Bucket="mlflow", Key=key)["Body"].read().decode()
            if text in wanted and wanted[text] in key:
                artifacts += 1
    versions = client.search_model_versions(f"name='{model}'")
    return {"runs": len(runs), "artifacts": artifacts, "model_versions": len(versions),
            "s3_objects": objects}


def _log_run(stack: DataStack, experiment: str, model: str, n: int) -> None:
    import mlflow

    client = _client(stack)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id)
    client.log_param(run.info.run_id, "n", str(n))
    for step in range(5):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    client.log_text(run.info.run_id, f"run {n}", "notes.txt")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name='{model}'"):
        client.create_registered_model(model)
    client.create_model_version(model, f"{run.info.artifact_uri}/notes.txt", run.info.run_id)
    assert mlflow.__version__


def test_runs_models_and_artifacts_survive_remove_push_and_killed_containers(
    data_stack: DataStack,
) -> None:
    stack = data_stack
    code, out = stack.deployer("build", "mlflow-server", "minio", "sklearn-model",
                               "--base-image", stack.bed["base_image"], *ca_cert_args(),
                               timeout=1800)
    assert code == 0, out
    code, out = stack.deployer("push", "--timeout", "300")
    assert code == 0, out
    stack.wait_mlflow()
    experiment, model = f"dsv-{stack.name}", f"dsv-model-{stack.name}"
    for n in range(RUNS):
        _log_run(stack, experiment, model, n)
    before = _counts(stack, experiment, model)
    assert before == {"runs": RUNS, "artifacts": RUNS, "model_versions": RUNS,
                      "s3_objects": before["s3_objects"]} and before["s3_objects"] >= RUNS

    # remove (volumes kept) + push
    code, out = stack.deployer("remove", "--timeout", "300")
    assert code == 0 and "kept; --volumes removes them" in out, out
    code, out = stack.deployer("push", "--timeout", "300")
    assert code == 0, out
    stack.wait_mlflow()
    stack.wait_s3()
    after_remove = _counts(stack, experiment, model)
    assert after_remove == before, (before, after_remove)

    # The S3 store and MLflow killed in the middle of a run; Swarm starts new containers.
    client = _client(stack)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    run = client.create_run(exp_id)
    client.log_param(run.info.run_id, "n", str(RUNS))
    client.log_metric(run.info.run_id, "loss", 0.5, step=0)
    killed = [c["Id"] for c in stack.containers("minio") + stack.containers("mlflow-server")]
    assert len(killed) == 2
    for container in killed:
        stack.api.kill(container)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            stack.containers("minio") and stack.containers("mlflow-server")):
        time.sleep(1)
    stack.wait_mlflow()
    stack.wait_s3()  # MLflow's artifact proxy answers 500 until its store is back
    client.log_metric(run.info.run_id, "loss", 0.25, step=1)
    # The upload retried (bounded) while the proxy and the store settle, as a client would.
    from mlflow.exceptions import MlflowException

    refused = 0
    for _ in range(12):
        try:
            client.log_text(run.info.run_id, f"run {RUNS}", "notes.txt")
            break
        except MlflowException:
            refused += 1
            time.sleep(5)
    else:
        raise AssertionError("MLflow refused the artifact upload for a minute after the kill")
    client.set_terminated(run.info.run_id)
    client.create_model_version(model, f"{run.info.artifact_uri}/notes.txt", run.info.run_id)
    after_kill = _counts(stack, experiment, model)
    assert after_kill["runs"] == RUNS + 1 and after_kill["artifacts"] == RUNS + 1, after_kill
    assert after_kill["model_versions"] == RUNS + 1, after_kill
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [0.5, 0.25]

    section = "Data survives (real mlflow-server + SeaweedFS images)"
    record(section, f"logged: {before}")
    record(section, f"after deployer remove (volumes kept) + push: {after_remove}")
    record(section, f"after S3 + MLflow containers killed mid-run (one more run; "
                    f"{refused} upload(s) refused while they came back): {after_kill}")
